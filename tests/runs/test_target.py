"""`capkit run --target URL --locustfile FILE`: a plain locustfile measured by --pid or --prometheus."""

from __future__ import annotations

import os

import psutil
import pytest

from capkit import analysis as ca
from capkit.analysis.data.steps import summarize_steps
from capkit.runs.processes import free_port
from capkit.store import open_store
from tests.conftest import assert_one_line_error, run_cli
from tests.loadrun import PLAIN


@pytest.fixture
def env(tmp_path):
    return {"CAPKIT_STORE_URL": f"sqlite:///{tmp_path / 'capkit.sqlite'}", "CAPKIT_RUNS_DIR": str(tmp_path / "runs")}


@pytest.fixture
def plain(tmp_path):
    path = tmp_path / "plain.py"
    path.write_text(PLAIN)
    return path


def _children():
    return {p.pid for p in psutil.Process(os.getpid()).children(recursive=True)}


def _stored(env):
    store = open_store(env["CAPKIT_STORE_URL"], create=False)
    data = ca.read_run(store)
    steps = summarize_steps(data.steps, data.requests, data.samples, warmup_s=data.warmup_s)
    store.engine.dispose()
    return data, steps


def test_plain_locustfile_measured_through_pid(reference_service, plain, env):
    svc = reference_service()
    before = _children()
    proc = run_cli("run", "--target", svc.url, "--locustfile", str(plain), "--pid", str(svc.pid),
                   "--stages", "0x2,3x4", "--warmup", "1", env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _children() - before == set()  # Locust is gone; only the test's service remains
    data, steps = _stored(env)
    assert data.meta.status == "complete" and data.meta.scenario == "locustfile"
    assert set(data.requests["name"]) == {"GET /healthz"}
    assert steps.loc[1, "rps"] > 20 and steps.loc[1, "clean"]
    assert steps.loc[1, "cpu_cores"] > 0 and steps.loc[1, "rss_mib"] > 20  # the service's tree, by PID


def test_plain_locustfile_measured_through_prometheus(reference_service, plain, env):
    svc = reference_service()
    proc = run_cli("run", "--target", svc.url, "--locustfile", str(plain), "--prometheus", f"{svc.url}/metrics",
                   "--metric", "http_rps=capkit_http_requests_total:rate",
                   "--metric", "in_flight=capkit_http_requests_in_flight",
                   "--stages", "0x2,3x4", "--warmup", "1", env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data, steps = _stored(env)
    service = data.samples[data.samples["source"] == "service"]
    assert {"http_rps", "in_flight"} <= set(service["metric"])
    # the service's own request counter agrees with what the generator recorded
    from capkit.analysis.data.steps import per_second_resources

    res = per_second_resources(data.samples, data.steps, data.warmup_s)
    measured = res[res["step"] == 1]["http_rps"].mean()
    assert measured == pytest.approx(steps.loc[1, "rps"], rel=0.25)


def test_reference_service_measured_through_default_prometheus_mapping(reference_service, plain, env):
    svc = reference_service()
    proc = run_cli("run", "--target", svc.url, "--locustfile", str(plain), "--prometheus", f"{svc.url}/metrics",
                   "--stages", "0x2,3x4", "--warmup", "1", env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data, steps = _stored(env)
    assert steps.loc[1, "cpu_cores"] > 0 and steps.loc[1, "rss_mib"] > 20  # from process_* series


def _no_run_left(env, tmp_path):
    assert not (tmp_path / "runs").exists()
    db = tmp_path / "capkit.sqlite"
    if db.exists():
        store = open_store(env["CAPKIT_STORE_URL"], create=False)
        assert store.list_runs().empty
        store.engine.dispose()


def test_locustfile_that_does_not_import(reference_service, env, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import no_such_module_capkit\n")
    svc = reference_service()
    proc = run_cli("run", "--target", svc.url, "--locustfile", str(bad), "--stages", "0x3,3x4", env=env)
    assert_one_line_error(proc, "cannot be loaded", "no_such_module_capkit")
    _no_run_left(env, tmp_path)


def test_target_that_does_not_answer(plain, env, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    proc = run_cli("run", "--target", url, "--locustfile", str(plain), "--stages", "0x3,3x4", env=env)
    assert_one_line_error(proc, f"target {url} does not answer")
    _no_run_left(env, tmp_path)


def test_pid_that_does_not_exist(reference_service, plain, env, tmp_path):
    svc = reference_service()
    pid = 4_000_000  # above Linux's pid_max
    proc = run_cli("run", "--target", svc.url, "--locustfile", str(plain), "--pid", str(pid),
                   "--stages", "0x3,3x4", env=env)
    assert_one_line_error(proc, f"no process with PID {pid}")
    _no_run_left(env, tmp_path)


def test_prometheus_that_does_not_answer(reference_service, plain, env, tmp_path):
    svc = reference_service()
    proc = run_cli("run", "--target", svc.url, "--locustfile", str(plain), "--prometheus",
                   f"http://127.0.0.1:{free_port()}/metrics", "--stages", "0x3,3x4", env=env)
    assert_one_line_error(proc, "cannot scrape Prometheus metrics")
    _no_run_left(env, tmp_path)


@pytest.mark.parametrize("args, needle", [(["--mix", "chat=x"], "--mix"), (["--think", "2,1"], "--think"),
                                          (["--stages", "r0x5"], "'r0x5'"),
                                          (["--metric", "a=b"], "--prometheus URL")])
def test_bad_options(env, tmp_path, plain, args, needle):
    target = ["--target", "http://127.0.0.1:9", "--locustfile", str(plain)] if "--metric" in args else []
    assert_one_line_error(run_cli("run", *target, *args, env=env), needle)
    _no_run_left(env, tmp_path)


BUSY = '''
import time

from locust import FastHttpUser, constant, task


class Busy(FastHttpUser):
    wait_time = constant(0)

    @task
    def burn(self):
        end = time.perf_counter() + 0.05
        while time.perf_counter() < end:  # the generator's own CPU, not the service's
            pass
        self.client.get("/healthz", name="GET /healthz")
'''


def test_saturated_generator_is_flagged(reference_service, env, tmp_path):
    svc = reference_service()
    busy = tmp_path / "busy.py"
    busy.write_text(BUSY)
    proc = run_cli("run", "--target", svc.url, "--locustfile", str(busy), "--pid", str(svc.pid),
                   "--stages", "0x3,2x4", "--warmup", "1", env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    _, steps = _stored(env)
    busy = steps.loc[1]
    print(f"generator: idle {steps.loc[0, 'generator_demand']:.2f}, busy CPU {busy['generator_cpu']:.2f}, "
          f"CPU + run-queue wait {busy['generator_demand']:.2f} cores")
    assert steps.loc[0, "generator_demand"] < 0.5 and "generator_saturated" not in steps.loc[0, "flags"]
    assert max(steps.loc[1, "generator_cpu"], steps.loc[1, "generator_demand"]) >= 0.9
    assert "generator_saturated" in steps.loc[1, "flags"] and not steps.loc[1, "clean"]


@pytest.mark.parametrize("args, needle", [(["--mix", "chat=4,bogus=1"], "--mix"), (["--think", "a"], "--think"),
                                          (["--stages", "0x10,r5"], "'r5'")])
def test_bad_plan_options(env, tmp_path, args, needle):
    assert_one_line_error(run_cli("plan", *args, env=env), needle)
    _no_run_left(env, tmp_path)
