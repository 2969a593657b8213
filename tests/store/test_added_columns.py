"""A store made before ``llm_stats`` had its ``turn`` and input-token columns gets them when opened
(nullable: its rows read as not measured there), and new rows store them."""

from __future__ import annotations

import sqlalchemy as sa

from capkit.store import open_store


def test_an_older_store_gets_the_new_llm_columns(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    open_store(url).engine.dispose()
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # the table as stores before the columns had it
        for name in ("turn", "input_tokens", "input_count"):
            conn.execute(sa.text(f"ALTER TABLE llm_stats DROP COLUMN {name}"))
    engine.dispose()
    for create in (False, True):
        store = open_store(url, create=create)
        cols = {c["name"] for c in sa.inspect(store.engine).get_columns("llm_stats")}
        assert {"turn", "input_tokens", "input_count"} <= cols
        store.engine.dispose()
