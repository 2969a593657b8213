"""`pytest notebooks/` alone still builds the fixture store the notebooks' defaults read."""


def pytest_sessionstart(session):
    from tests.conftest import ensure_fixture_store

    ensure_fixture_store()
