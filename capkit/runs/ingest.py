"""Turn the raw records of a run (``load.jsonl``, ``resources.jsonl``) into store rows.

Used live by the orchestrator while a run goes, and offline by ``capkit load RUN_DIR`` to
(re)load a run whose store was unavailable: the raw files are the source of truth.
"""

from __future__ import annotations

import bisect

from capkit.store import Store

# seconds of users-per-tick kept to place request rows (a row follows its tick within seconds)
USERS_KEPT_S = 600


class Ingestor:
    """Consumes load records in file order; keeps the step timeline to place each second."""

    def __init__(self, store: Store, run_id: str, *, keep: bool = False):
        self.store = store
        self.run_id = run_id
        # a search decides each next step from what was measured: it keeps the rows in memory
        self.keep = keep
        self.request_rows: list[dict] = []
        self.meter_rows: list[dict] = []
        self.steps: dict[int, dict] = {}
        self._starts: list[int] = []  # int(started_at) per step, in order
        self._order: list[int] = []
        self.users_at: dict[int, int] = {}
        self.last_tick: dict | None = None
        self.ended: dict | None = None

    @property
    def current_step(self) -> int | None:
        """The step being run (the last one begun), None before the first."""
        return self._order[-1] if self._order else None

    def step_at(self, ts: int) -> int | None:
        i = bisect.bisect_right(self._starts, ts) - 1
        return self._order[i] if i >= 0 else None

    def feed(self, records: list[dict]) -> list[dict]:
        """Store ``records``; return the request rows stored (with their step)."""
        req_rows, llm_rows, corrected_rows = [], [], []
        for rec in records:
            kind = rec.get("type")
            if kind == "step":
                self._close_previous(rec["started_at"])
                self.steps[rec["step"]] = dict(rec, ended_at=None)
                self._starts.append(int(rec["started_at"]))
                self._order.append(rec["step"])
                self.store.upsert_step(self.run_id, rec["step"], users=rec["users"], rate=rec.get("rate"),
                                       planned_s=rec["planned_s"], started_at=rec["started_at"],
                                       ended_at=None, complete=False)
            elif kind == "tick":
                self.users_at[rec["ts"]] = rec["users"]
                if len(self.users_at) > 2 * USERS_KEPT_S:  # a soak must not grow memory with its length
                    newest = rec["ts"]
                    self.users_at = {ts: u for ts, u in self.users_at.items() if ts > newest - USERS_KEPT_S}
                self.last_tick = rec
                meters = [{"ts": float(rec["ts"]), "source": "generator", "metric": name, "value": float(value)}
                          for name, value in (rec.get("meters") or {}).items()]
                if meters:
                    self.store.add_samples(self.run_id, meters)
                    if self.keep:
                        self.meter_rows.extend(meters)
            elif kind == "req":
                step = self.step_at(rec["ts"])
                if step is None:
                    continue
                row = {k: v for k, v in rec.items() if k != "type"}
                row["step"] = step
                row["users"] = self.users_at.get(rec["ts"], self.steps[step]["users"])
                req_rows.append(row)
            elif kind in ("llm", "cor"):  # token timing; latency from the intended start
                row = self._placed(rec)
                if row is not None:
                    (llm_rows if kind == "llm" else corrected_rows).append(row)
            elif kind == "end":
                self.ended = rec
        self.store.add_request_stats(self.run_id, req_rows)
        if self.keep:
            self.request_rows.extend(req_rows)
        if llm_rows:
            self.store.add_llm_stats(self.run_id, llm_rows)
        if corrected_rows:
            self.store.add_request_corrected(self.run_id, corrected_rows)
        return req_rows

    def _placed(self, rec: dict) -> dict | None:
        """A per-second record without its type, with the step and users of its second."""
        step = self.step_at(rec["ts"])
        if step is None:
            return None
        row = {k: v for k, v in rec.items() if k != "type"}
        row["step"] = step
        row["users"] = self.users_at.get(rec["ts"], self.steps[step]["users"])
        return row

    def _close_previous(self, at: float) -> None:
        if not self._order:
            return
        prev = self.steps[self._order[-1]]
        prev["ended_at"] = at
        self.store.upsert_step(self.run_id, prev["step"], users=prev["users"], rate=prev.get("rate"),
                               planned_s=prev["planned_s"], started_at=prev["started_at"],
                               ended_at=at, complete=True)

    def finish(self, at: float, *, last_complete: bool) -> None:
        """Close the last step: complete only if it ran its planned time (the load ended normally)."""
        if not self._order:
            return
        last = self.steps[self._order[-1]]
        ran = at - last["started_at"]
        complete = last_complete and ran >= 0.9 * last["planned_s"]
        # the load stops at the planned end; what comes after (stopping users) is not the step
        at = min(at, last["started_at"] + last["planned_s"])
        self.store.upsert_step(self.run_id, last["step"], users=last["users"], rate=last.get("rate"),
                               planned_s=last["planned_s"], started_at=last["started_at"],
                               ended_at=at, complete=complete)
