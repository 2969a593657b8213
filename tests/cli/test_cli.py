"""Bad input to the CLI: one clear line, non-zero exit, no traceback, nothing half-written."""

import socket

import pytest

from tests.conftest import assert_one_line_error, run_cli


@pytest.fixture
def env(tmp_path):
    return {"CAPKIT_STORE_URL": f"sqlite:///{tmp_path / 'store.sqlite'}", "CAPKIT_RUNS_DIR": str(tmp_path / "runs"),
            "CAPKIT_REPORTS_DIR": str(tmp_path / "reports"),
            "CAPKIT_DATABASE_URL": f"sqlite:///{tmp_path / 's.sqlite'}"}


def test_unknown_profile(env, tmp_path):
    assert_one_line_error(run_cli("plan", "--profile", "huge", env=env), "unknown profile 'huge'", "smoke")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "store.sqlite").exists()


@pytest.mark.parametrize("spec, needle", [("0x10,abc", "'abc'"), ("0x10,0x10", "only the first stage"),
                                          ("5x-3", "'5x-3'"), ("", "''")])
def test_malformed_stage_plan(env, tmp_path, spec, needle):
    assert_one_line_error(run_cli("plan", "--stages", spec, env=env), needle)
    assert not (tmp_path / "runs").exists()


def test_store_that_cannot_be_opened(env, tmp_path):
    proc = run_cli("plan", "--profile", "smoke", "--store", "postgresql+psycopg://u:pw@127.0.0.1:1/x", env=env)
    err = assert_one_line_error(proc, "results store", "***")
    assert ":pw@" not in err
    assert not (tmp_path / "runs").exists()


def test_port_in_use(env, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert_one_line_error(run_cli("plan", "--profile", "smoke", "--port", str(port), env=env),
                              f"port {port}", "in use")


def test_reading_a_store_that_does_not_exist(env, tmp_path):
    assert_one_line_error(run_cli("runs", env=env), "no such file yet", "capkit plan")
    assert not (tmp_path / "store.sqlite").exists()


def test_unknown_run_id(env):
    from capkit.store import open_store
    from capkit.synthetic import write_synthetic_run

    write_synthetic_run(open_store(env["CAPKIT_STORE_URL"]), "known-run")
    assert_one_line_error(run_cli("report", "no-such-run", env=env), "'no-such-run'", "not in the results store")


def test_unknown_option_is_one_line(env):
    assert_one_line_error(run_cli("plan", "--bogus", env=env), "--bogus")


def test_report_with_relative_folders_writes_tables_beside_the_pages(tmp_path):
    from capkit.store import open_store
    from capkit.synthetic import write_synthetic_run

    write_synthetic_run(open_store(f"sqlite:///{tmp_path / 'store.sqlite'}"), "rel-run")
    proc = run_cli("report", "rel-run", env={"CAPKIT_STORE_URL": "sqlite:///store.sqlite",
                                            "CAPKIT_REPORTS_DIR": "reports"}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    folder = tmp_path / "reports" / "rel-run"
    assert (folder / "tables" / "baseline_metrics.csv").exists()
    assert not (folder / "reports").exists()


def test_reports_folder_that_cannot_be_written(env, tmp_path):
    from capkit.store import open_store
    from capkit.synthetic import write_synthetic_run

    write_synthetic_run(open_store(env["CAPKIT_STORE_URL"]), "known-run")
    (tmp_path / "a-file").write_text("in the way")
    env = {**env, "CAPKIT_REPORTS_DIR": str(tmp_path / "a-file" / "reports")}
    assert_one_line_error(run_cli("report", "known-run", env=env), "cannot write reports to", "CAPKIT_REPORTS_DIR")
