"""A store that dies at a step boundary: the live-run guard remembers it (no traceback) and the raw
files keep the run."""

from sqlalchemy import text

from capkit.errors import StoreError
from capkit.runs.ingest import Ingestor
from capkit.store import open_store
from capkit.store.guarded import GuardedStore

T0 = 1_700_000_000


def test_a_store_failing_at_a_step_boundary_is_remembered_not_raised(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    store.create_run(run_id="r", target="http://x", scenario="t", spec={"plan": {"warmup_s": 1}}, machine={})
    guarded = GuardedStore(store)
    ing = Ingestor(guarded, "r")
    ing.feed([{"type": "step", "step": 0, "users": 0, "rate": None, "planned_s": 5, "started_at": T0}])
    with store.engine.begin() as conn:  # the store breaks between two steps
        conn.execute(text("DROP TABLE steps"))
    ing.feed([{"type": "step", "step": 1, "users": 5, "rate": None, "planned_s": 5, "started_at": T0 + 5}])
    assert isinstance(guarded.failure, StoreError) and "no such table: steps" in str(guarded.failure)
    ing.finish(T0 + 10, last_complete=True)  # later writes are skipped, not raised
    store.engine.dispose()


def test_delete_run_maps_a_failure_to_a_store_error(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE events"))
    try:
        store.delete_run("r")
    except StoreError as exc:
        assert "no such table: events" in str(exc)
    else:
        raise AssertionError("delete_run swallowed the failure")
    store.engine.dispose()


def test_every_write_a_live_run_makes_is_guarded():
    """A write method added to the store (as the LLM tables' were) is guarded too: a store failing
    there must not end the load with a StoreError instead of "the raw files keep the run"."""
    import inspect

    from capkit.store.guarded import is_live_write
    from capkit.store.store import Store

    writers = {name for name, fn in inspect.getmembers(Store, inspect.isfunction)
               if not name.startswith("_")
               and ("self._exec(" in inspect.getsource(fn) or "self._write(" in inspect.getsource(fn))}
    assert {"add_llm_stats", "add_request_corrected", "add_samples", "upsert_step", "finish_run"} <= writers
    assert sorted(n for n in writers if not is_live_write(n)) == ["create_run", "delete_run"]  # before/after a run
