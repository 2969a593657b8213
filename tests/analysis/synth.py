"""Helpers of the known-truth tests: seeded synthetic runs in an in-memory store."""

from capkit import analysis as ca
from capkit.schemas import stepped
from capkit.store import open_store
from capkit.synthetic import SyntheticTruth, write_synthetic_run


def store():
    return open_store("sqlite:///:memory:")


def run(st, run_id, truth=None, *, users=(5, 10, 15, 20, 25), step_s=20, idle_s=20, seed=0, start=1.7e9):
    plan = stepped(list(users), idle_s=idle_s, step_s=step_s, warmup_s=2)
    truth = write_synthetic_run(st, run_id, plan=plan, truth=truth or SyntheticTruth(), seed=seed, start=start)
    return ca.read_run(st, run_id), truth
