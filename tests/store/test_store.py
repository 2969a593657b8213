"""The results store on SQLite and on a fresh PostgreSQL database."""

import pytest

from capkit.errors import RunNotFoundError, StoreError
from capkit.store import open_store
from capkit.synthetic import write_synthetic_run


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite'}"
    return request.getfixturevalue("pg_url")


def test_round_trip_of_a_run(store_url):
    store = open_store(store_url)
    write_synthetic_run(store, "r1", seed=1)
    run = store.get_run("r1")
    assert run.status == "complete" and run.spec.plan.warmup_s == 2.0
    steps = store.steps("r1")
    assert steps["users"].tolist() == [0, 5, 10, 15, 20, 25]
    assert steps["complete"].astype(bool).all()
    req = store.request_stats("r1")
    assert len(req) > 0 and set(req["step"]) == {1, 2, 3, 4, 5}
    assert store.count("resource_samples", "r1") == 6 * 20 * 4
    store.engine.dispose()


def test_unknown_run_names_the_latest(store_url):
    store = open_store(store_url)
    write_synthetic_run(store, "known", seed=1)
    with pytest.raises(RunNotFoundError, match="'nope' is not in the results store.*known"):
        store.get_run("nope")
    store.engine.dispose()


def test_unreachable_store_is_one_line_without_password():
    with pytest.raises(StoreError) as err:
        open_store("postgresql+psycopg://u:hunter2@127.0.0.1:1/none")
    message = str(err.value)
    assert "hunter2" not in message and "***" in message and "\n" not in message


def test_malformed_url():
    with pytest.raises(StoreError, match="not a database URL"):
        open_store("not a url")
