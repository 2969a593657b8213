"""A memory limit reached under load: the kernel OOM-kills the service, and the run ends with that as
its measured failure (the load it happened at, every step before it kept)."""

from __future__ import annotations

from pathlib import Path

from capkit.schemas import SERVICE_EXITED, PodLimits, RunStatus, StagePlan
from tests.fleetparts import require_cgroups
from tests.service.conftest import fast_settings


def test_an_oom_kill_under_the_memory_limit_ends_the_run_as_a_measured_failure(tmp_path: Path):
    require_cgroups()
    from capkit import analysis as ca
    from capkit.runs.reference import run_reference
    from capkit.store import open_store

    # every request keeps 4 MiB: a 200 MiB limit is reached within seconds of load
    settings = fast_settings(store_url=f"sqlite:///{tmp_path / 'capkit.sqlite'}", runs_dir=str(tmp_path / "runs"),
                             database_url=f"sqlite:///{tmp_path / 'service.sqlite'}", seed_on_start=True,
                             leak_bytes_per_request=4 * 2**20)
    lines: list[str] = []
    result = run_reference(settings, StagePlan.parse("0x3,4x20", warmup_s=1), say=lines.append, command="test",
                           think="0.1,0.3", limits=PodLimits(cpu_cores=1.0, memory_mib=200))
    assert result.status == RunStatus.INCOMPLETE
    assert result.reason.startswith(SERVICE_EXITED) and "during the step at 4 users" in result.reason, result.reason
    assert "OOM-killed under its memory limit of 200 MiB" in result.reason
    run = ca.read_run(open_store(settings.store_url, create=False), result.run_id)
    assert run.meta.spec.limits.memory_mib == 200 and run.meta.spec.limits.enforced
    assert (run.events["kind"] == "oom_kill").sum() == 1
    memory = run.samples[(run.samples["source"] == "service") & (run.samples["metric"] == "cgroup_memory_mib")]
    # the cgroup's charge was sampled up to the kill (at ~30 req/s × 4 MiB the last second's climb is not)
    assert len(memory) >= 2 and 30 < memory["value"].max() < 200
    assert len(run.steps) == 2 and run.requests["count"].sum() > 0  # what it measured is kept
    from capkit.analysis.answer.limits import service_failure

    failure = service_failure(run.meta, run.steps)
    assert failure is not None and failure.exited and failure.users == 4  # the analysis reads it as the failure
