import pytest

from voxtrain_shared import auth, settings

BASE = {"VOXTRAIN_POSTGRES__DSN": "postgresql://u:p@h/db", "VOXTRAIN_AUTH__JWT_SECRET": "s" * 40}


def test_settings_compose_sections_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in {
        **BASE,
        "VOXTRAIN_MINIO__ACCESS_KEY": "a",
        "VOXTRAIN_MINIO__SECRET_KEY": "b",
        "VOXTRAIN_POSTGRES__SCHEMA": "ds_test",
        "VOXTRAIN_MAX_FILE_BYTES": "1000",
    }.items():
        monkeypatch.setenv(k, v)
    s = settings.load(settings.DatasetsSettings)
    assert s.postgres.schema_name == "ds_test" and s.max_file_bytes == 1000 and s.http.port == 8102
    assert "VOXTRAIN_MINIO__SECRET_KEY" in settings.env_var_names(settings.DatasetsSettings)


def test_settings_fail_fast_naming_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXTRAIN_POSTGRES__DSN", "postgresql://u:p@h/db")
    monkeypatch.delenv("VOXTRAIN_AUTH__JWT_SECRET", raising=False)
    with pytest.raises(SystemExit) as exc:
        settings.load(settings.ModelsSettings)
    assert "VOXTRAIN_AUTH__JWT_SECRET" in str(exc.value)


def test_production_refuses_a_placeholder_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXTRAIN_POSTGRES__DSN", "postgresql://u:p@h/db")
    monkeypatch.setenv("VOXTRAIN_AUTH__JWT_SECRET", "changeme")
    monkeypatch.setenv("VOXTRAIN_ENVIRONMENT", "production")
    with pytest.raises(SystemExit, match="real secret"):
        settings.load(settings.ModelsSettings)


def test_tokens_name_a_tenant_and_are_verified() -> None:
    a = settings.AuthSettings(jwt_secret="k" * 40)
    tok = auth.issue_token(a, "acme")
    assert auth.verify_token(a, tok).tenant_id == "acme"
    with pytest.raises(auth.InvalidToken):
        auth.verify_token(settings.AuthSettings(jwt_secret="other" * 10), tok)
    with pytest.raises(auth.InvalidToken):
        auth.verify_token(a, auth.issue_token(a, "acme", ttl_seconds=-10))
    with pytest.raises(ValueError):
        auth.issue_token(a, "../evil")
