"""API keys without servers: format, hashing, scopes bounded by the creator's, expiry and revocation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from voxtrain_identity import domain
from voxtrain_shared.errors import Rejected
from voxtrain_shared.vocab import ErrorCode, Scope

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
ALL = frozenset(Scope)


def make(scopes: frozenset[Scope] = ALL, expires_at: datetime | None = None) -> tuple[domain.ApiKey, str]:
    return domain.new_key(
        "acme", " ci uploads ", scopes, granted_by=ALL, created_by="acme", now=NOW, expires_at=expires_at
    )


def test_a_key_is_stored_as_a_hash_and_its_text_finds_it() -> None:
    key, text = make()
    key_id, secret = domain.parse_key(text)
    assert text.startswith("vtk_") and key_id == key.id and key.label == "ci uploads"
    assert secret not in key.secret_hash and key.secret_hash == domain.hash_secret(secret)
    assert key.hint == text[-4:] and len(secret) >= 43  # 256 random bits
    assert domain.check_exchange(key, secret, NOW).last_used_at == NOW
    other, other_text = make()
    assert other_text != text and other.secret_hash != key.secret_hash


@pytest.mark.parametrize("text", ["", "vtk_", "vtk_nothex_secret", "abc_" + "0" * 32 + "_s", "vtk_" + "0" * 32 + "_"])
def test_malformed_keys_are_unauthorized(text: str) -> None:
    with pytest.raises(Rejected) as exc:
        domain.parse_key(text)
    assert exc.value.code is ErrorCode.UNAUTHORIZED


def test_a_wrong_secret_an_unknown_key_a_revoked_or_expired_key_cannot_be_exchanged() -> None:
    key, text = make(expires_at=NOW + timedelta(days=1))
    _, secret = domain.parse_key(text)
    for found, given, when, message in [
        (key, secret + "x", NOW, "not valid"),
        (None, secret, NOW, "not valid"),
        (domain.revoke(key, NOW), secret, NOW, "revoked"),
        (key, secret, NOW + timedelta(days=1), "expired"),
    ]:
        with pytest.raises(Rejected, match=message) as exc:
            domain.check_exchange(found, given, when)
        assert exc.value.code is ErrorCode.UNAUTHORIZED
    assert key.state(NOW) is domain.KeyState.ACTIVE
    assert key.state(NOW + timedelta(days=2)) is domain.KeyState.EXPIRED
    revoked = domain.revoke(key, NOW)
    assert revoked.state(NOW) is domain.KeyState.REVOKED and domain.revoke(revoked, NOW + timedelta(1)) == revoked


def test_a_key_has_at_most_its_creators_scopes_and_at_least_one() -> None:
    with pytest.raises(Rejected, match="creator lacks") as exc:
        domain.new_key("acme", "x", ALL, granted_by=frozenset({Scope.READ, Scope.WRITE}), created_by="k", now=NOW)
    assert exc.value.code is ErrorCode.FORBIDDEN
    with pytest.raises(Rejected, match="at least one scope"):
        make(frozenset())
    key, _ = domain.new_key(
        "acme", "x", frozenset({Scope.READ}), granted_by=frozenset({Scope.READ}), created_by="k", now=NOW
    )
    assert key.scopes == {Scope.READ}


def test_labels_and_expiry_are_checked() -> None:
    for bad in ["", "   ", "a\nb", "x" * 201]:
        with pytest.raises(Rejected, match="label"):
            domain.clean_label(bad)
    with pytest.raises(Rejected, match="future"):
        make(expires_at=NOW)
