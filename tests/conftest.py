"""Fixtures every test folder can use. Folder-specific fixtures live in that folder's conftest.py."""

from collections.abc import Iterator

import pytest

from voxtrain_devstack import Endpoints

try:  # tests/ is a plain folder on sys.path (pytest's default "prepend" import mode) ...
    import _stack
    import support
except ImportError:  # ... or a package, when a tests/__init__.py exists
    from tests import _stack, support


@pytest.fixture(scope="session")
def stack() -> Iterator[Endpoints]:
    """Real Kafka, PostgreSQL and MinIO for this test session (see tests/_stack.py for where from)."""
    with _stack.provide() as endpoints:
        yield endpoints
        _stack.forget(endpoints, support.RUN_TAG)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that needs the real servers (the ``stack`` fixture, directly or through other fixtures) is an
    integration test, marked or not — so ``make unit`` (``-m "not integration"``) never starts a server."""
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)
