"""Results store down mid-run: the load goes on, the raw files keep everything, `capkit load` restores it."""

import os
import subprocess
import sys
import threading

from capkit.store import open_store
from tests.conftest import ROOT, run_cli
from tests.service.tcp_proxy import TcpProxy


def test_store_cut_mid_run_then_loaded_from_raw_files(tmp_path, pg_url):
    proxy = TcpProxy(("127.0.0.1", 5432)).open()
    store_url = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    env = {**os.environ, "CAPKIT_STORE_URL": store_url, "CAPKIT_RUNS_DIR": str(tmp_path / "runs"),
           "CAPKIT_DATABASE_URL": f"sqlite:///{tmp_path / 'svc.sqlite'}"}
    try:
        plan = subprocess.Popen([sys.executable, "-m", "capkit", "plan", "--stages", "0x4,3x5,6x5", "--warmup", "1",
                                 "--no-report"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        threading.Timer(9, proxy.close).start()  # the store goes away during the second step
        out, err = plan.communicate(timeout=120)
    finally:
        proxy.close()
    assert plan.returncode == 2 and "Traceback" not in err
    assert "capkit load" in err and len(err.strip().splitlines()) == 1
    assert "load finished" in out  # the load itself ran to its end
    run_dir = next((tmp_path / "runs").iterdir())
    text = (run_dir / "load.jsonl").read_text()
    assert '"type":"end"' in text  # the raw files hold the whole run

    # the store is back (directly, without the proxy): load the raw files into it
    loaded = run_cli("load", str(run_dir), "--replace", env={"CAPKIT_STORE_URL": pg_url})
    assert loaded.returncode == 0, loaded.stderr
    store = open_store(pg_url, create=False)
    run = store.get_run(run_dir.name)
    assert run.status == "complete"
    assert store.steps(run_dir.name)["users"].tolist() == [0, 3, 6]
    assert store.count("request_stats", run_dir.name) > 0 and store.count("resource_samples", run_dir.name) > 20
    store.engine.dispose()
