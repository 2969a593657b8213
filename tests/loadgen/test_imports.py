"""Locust monkey-patches at import: only the load processes may import it."""

import subprocess
import sys


def test_cli_orchestrator_and_collectors_do_not_import_locust_or_gevent():
    code = ("import sys, capkit.cli, capkit.cli.measure, capkit.runs.orchestrator, capkit.runs.target, "
            "capkit.runs.reference, capkit.metrics, capkit.runs.locust_csv, capkit.runs.ingest, capkit.runs.locust, "
            "capkit.records.seconds, capkit.loadgen, capkit.loadgen.meters; "
            "bad = [m for m in ('locust', 'gevent') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
