import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from voxtrain_shared import auth, settings
from voxtrain_shared.vocab import Scope

PRIVATE, PUBLIC = auth.generate_key_pair()
BASE = {"VOXTRAIN_POSTGRES__DSN": "postgresql://u:p@h/db", "VOXTRAIN_AUTH__PUBLIC_KEY": PUBLIC}
ISSUER = settings.AuthSettings(public_key=PUBLIC, private_key=PRIVATE)
VERIFIER = settings.AuthSettings(public_key=PUBLIC)


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
    monkeypatch.delenv("VOXTRAIN_AUTH__PUBLIC_KEY", raising=False)
    with pytest.raises(SystemExit) as exc:
        settings.load(settings.ModelsSettings)
    assert "VOXTRAIN_AUTH__PUBLIC_KEY" in str(exc.value)


def test_only_the_issuer_may_hold_the_signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in BASE.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("VOXTRAIN_AUTH__PRIVATE_KEY", PRIVATE)
    with pytest.raises(SystemExit, match="must not be given to models"):
        settings.load(settings.ModelsSettings)
    assert settings.load(settings.IdentitySettings).auth.private_key is not None
    monkeypatch.delenv("VOXTRAIN_AUTH__PRIVATE_KEY")
    with pytest.raises(SystemExit, match="signs tokens"):
        settings.load(settings.IdentitySettings)


def test_keys_must_be_ed25519_and_belong_together() -> None:
    with pytest.raises(ValueError, match="not an Ed25519 public key"):
        settings.AuthSettings(public_key="changeme")
    other_private, _ = auth.generate_key_pair()
    with pytest.raises(ValueError, match="does not hold the public key"):
        settings.AuthSettings(public_key=PUBLIC, private_key=other_private)


def test_tokens_name_a_tenant_and_its_scopes_and_are_verified_with_the_public_key() -> None:
    tok = auth.issue_token(ISSUER, "acme", scopes={Scope.READ})
    p = auth.verify_token(VERIFIER, tok)
    assert (p.tenant_id, p.scopes, p.operator) == ("acme", frozenset({Scope.READ}), False)
    assert p.allows(Scope.READ) and not p.allows(Scope.WRITE)
    assert auth.verify_token(VERIFIER, auth.issue_token(ISSUER, "acme")).scopes == auth.ALL_SCOPES
    with pytest.raises(ValueError, match="only an issuer"):
        auth.issue_token(VERIFIER, "acme")
    with pytest.raises(auth.InvalidToken):
        auth.verify_token(VERIFIER, auth.issue_token(ISSUER, "acme", ttl_seconds=-10))
    with pytest.raises(ValueError):
        auth.issue_token(ISSUER, "../evil")
    capped = jwt.decode(
        auth.issue_token(ISSUER, "acme", expires_at=int(time.time()) + 5), options={"verify_signature": False}
    )
    assert capped["exp"] <= time.time() + 5


def test_tokens_signed_with_another_key_or_the_old_shared_secret_are_refused() -> None:
    stranger_private, stranger_public = auth.generate_key_pair()
    stranger = settings.AuthSettings(public_key=stranger_public, private_key=stranger_private)
    with pytest.raises(auth.InvalidToken, match="does not trust"):
        auth.verify_token(VERIFIER, auth.issue_token(stranger, "acme"))
    # another key claiming the trusted key's id: the signature does not match
    trusted_kid = next(iter(auth.load_public_keys(PUBLIC)))
    claims = {
        "sub": "acme",
        "tenant": "acme",
        "scope": "read write train",
        "iss": "voxtrain",
        "aud": "voxtrain-api",
        "exp": int(time.time()) + 60,
    }
    forged = jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": trusted_kid})
    with pytest.raises(auth.InvalidToken, match="Signature"):
        auth.verify_token(VERIFIER, forged)
    hs256 = jwt.encode(claims, "test-secret-" + "x" * 32, algorithm="HS256", headers={"kid": trusted_kid})
    with pytest.raises(auth.InvalidToken, match="not signed with EdDSA"):
        auth.verify_token(VERIFIER, hs256)


def test_several_public_keys_verify_while_the_signing_key_is_rotated() -> None:
    new_private, new_public = auth.generate_key_pair()
    pem = (
        Ed25519PrivateKey.from_private_bytes(auth._raw(new_private))
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    both = settings.AuthSettings(public_key=f"{PUBLIC},{pem}")
    old_token = auth.issue_token(ISSUER, "acme")
    new_token = auth.issue_token(settings.AuthSettings(public_key=new_public, private_key=new_private), "acme")
    assert auth.verify_token(both, old_token).tenant_id == auth.verify_token(both, new_token).tenant_id == "acme"
    with pytest.raises(auth.InvalidToken):
        auth.verify_token(VERIFIER, new_token)


def test_scopes_parse_from_text_and_refuse_unknown_ones() -> None:
    assert auth.parse_scopes("read, train") == {Scope.READ, Scope.TRAIN}
    assert auth.scope_text([Scope.TRAIN, Scope.READ]) == "read train"
    with pytest.raises(ValueError, match="scopes are read, write, train"):
        auth.parse_scopes("read admin")
