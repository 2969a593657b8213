"""`capkit report`, `capkit check`, `capkit usl`, `capkit what-if`, `capkit notebooks`: results of stored runs."""

from __future__ import annotations

from pathlib import Path

import click

from capkit.cli.options import criteria, criteria_options, limit_options, limits, settings
from capkit.errors import CapkitError, ConfigError, GateFailure


@click.command()
@click.argument("run_id", required=False)
@click.option("--store", "store_url", help="Results store URL.")
@click.option("--compare", "compare_id", help="A second run (e.g. another git SHA): adds the comparison page.")
@click.option("--target-users", type=click.FloatRange(min=0, min_open=True), default=500.0, show_default=True,
              help="Users the replica count is planned for.")
@click.option("--bootstrap", type=click.IntRange(0, 100_000), default=200, show_default=True,
              help="Bootstrap resamples of the USL and latency intervals.")
@click.option("--history", "history", is_flag=True,
              help="Draw the history of a target's runs (reports/history.html) instead of one run's report.")
@click.option("--target", "target_name", help="With --history: the target (default: the latest run's).")
@click.option("--reference-users", type=click.FloatRange(min=0, min_open=True),
              help="With --history: the load p95 is compared at (default: the highest every run measured).")
@click.option("--screenshots", is_flag=True, help="Also write PNG screenshots of the pages (headless Chromium) "
                                                  "under reports/RUN_ID/screenshots/.")
@criteria_options
@limit_options
def report(run_id, store_url, compare_id, target_users, bootstrap, history, target_name, reference_users,
           screenshots, p95_ms, p95_critical_ms, max_error_rate, cpu_limit, memory_limit_mib, db_connection_limit,
           bandwidth_mbps):
    """Execute the report notebooks for RUN_ID (default: the latest) into reports/RUN_ID/, judged by
    the run's own criteria (stored with it) unless --p95-ms, --p95-critical-ms or --max-error-rate
    say otherwise."""
    from capkit.report.workspace import Workspace

    s = settings(store_url=store_url)
    if screenshots:
        _check_browser()
    if history:
        if run_id or compare_id:
            raise ConfigError("--history draws every run of a target: leave out RUN_ID and --compare")
        _history(s, target_name, reference_users, bootstrap, limits(cpu_limit, memory_limit_mib,
                                                                    db_connection_limit, bandwidth_mbps),
                 screenshots=screenshots)
        return
    with Workspace(Path(s.reports_dir), s.store_url) as workspace:  # the kernel imports while the run is checked
        from capkit.analysis.answer.parameters import ReportParameters
        from capkit.report.publish import publish
        from capkit.store import open_store

        store = open_store(s.store_url, create=False)
        run_id = run_id or store.latest_run_id()
        if not run_id:
            raise CapkitError("the results store holds no runs yet; run `capkit plan` first")
        meta = store.get_run(run_id)  # unknown ids fail here, before any notebook runs
        if compare_id:
            store.get_run(compare_id)
        if meta.spec.service_cores and cpu_limit == 1.0:
            cpu_limit = float(meta.spec.service_cores)
        crit = criteria(meta.spec.criteria, p95_ms=p95_ms, p95_critical_ms=p95_critical_ms,
                        max_error_rate=max_error_rate)
        params = ReportParameters.from_limits(limits(cpu_limit, memory_limit_mib, db_connection_limit,
                                                     bandwidth_mbps), target_users=target_users,
                                              bootstrap=bootstrap, criteria=crit)
        published = publish(run_id, workspace=workspace, overrides=params.overrides(), compare=compare_id)
    if screenshots:
        from capkit.report.browser import screenshot_pages

        pages = [published.index] + [p.with_suffix(".html") for p in published.notebooks]
        shots = screenshot_pages(pages, published.folder / "screenshots")
        click.echo(f"screenshots: {len(shots)} in {published.folder / 'screenshots'}")
    click.echo(f"report: {published.index}")


def _check_browser() -> None:
    from capkit.report.browser import find_chromium

    if find_chromium() is None:
        raise ConfigError("--screenshots needs Chromium: install it with ops/install-system-deps.sh "
                          "(or set CAPKIT_CHROMIUM to a Chromium-type browser)")


def _history(s, target, reference_users, bootstrap, lim, *, screenshots: bool) -> None:
    """``capkit report --history``: reports/history.html, history/history.png/.svg/.csv."""
    from capkit.analysis.answer.parameters import ReportParameters
    from capkit.analysis.history import history_html, run_history
    from capkit.analysis.present.figstyle import save_figure
    from capkit.analysis.present.figures import plot_history
    from capkit.report.index import write_history_page
    from capkit.store import open_store

    store = open_store(s.store_url, create=False)
    hist = run_history(store, target=target, reference_users=reference_users,
                       params=ReportParameters.from_limits(lim, bootstrap=bootstrap))
    reports = Path(s.reports_dir)
    folder = reports / "history"
    folder.mkdir(parents=True, exist_ok=True)
    hist.table.to_csv(folder / "history.csv", index=False)
    save_figure(plot_history(hist), folder, "history")
    page = write_history_page(reports, history_html(hist, figure="history/history"), target=hist.target)
    if screenshots:
        from capkit.report.browser import screenshot_pages

        screenshot_pages([page, reports / "index.html"], folder / "screenshots")
    flagged = int((hist.table["regression"] != "").sum())
    click.echo(f"history of {hist.target}: {len(hist.table)} run(s), {flagged} regression(s)"
               + (f", {len(hist.skipped)} left out" if hist.skipped else ""))
    click.echo(f"history: {page}")


@click.command()
@click.argument("run_id")
@click.option("--store", "store_url", help="Results store URL.")
@click.option("--max-p95-ms", type=float,
              help="Highest p95 of the steps allowed (default: the run's critical p95 threshold, 2000 ms unless "
                   "the run was given --p95-critical-ms).")
@click.option("--max-error-rate", type=float,
              help="Failures / requests allowed (default: the run's error limit, 0.05 unless given --max-error-rate).")
@click.option("--min-capacity", type=float, help="Minimum planning capacity (users per replica).")
@click.option("--baseline", "baseline_id", help="Baseline run: fail on a significant capacity loss.")
@click.option("--max-regression", type=float, default=0.10, show_default=True,
              help="Capacity loss against --baseline allowed, as a share.")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False), help="Write JUnit XML here.")
@limit_options
def check(run_id, store_url, max_p95_ms, max_error_rate, min_capacity, baseline_id, max_regression, junit_path,
          cpu_limit, memory_limit_mib, db_connection_limit, bandwidth_mbps):
    """CI gates for RUN_ID: exit 1 when a threshold is breached (JUnit XML with --junit, written in every
    case: a run that cannot be analysed is a failing `analysis` case)."""
    from capkit.analysis.answer.gates import GateResult, GateThresholds, check_run, junit_xml
    from capkit.store import open_store

    suite = f"capkit.check.{run_id}"
    try:
        store = open_store(settings(store_url=store_url).store_url, create=False)
        criteria = store.get_run(run_id).spec.criteria
        thresholds = GateThresholds(max_p95_ms=criteria.p95_critical_ms if max_p95_ms is None else max_p95_ms,
                                    max_error_rate=(criteria.max_error_rate if max_error_rate is None
                                                    else max_error_rate),
                                    min_capacity=min_capacity, max_regression=max_regression)
        results = check_run(store, run_id, limits=limits(cpu_limit, memory_limit_mib, db_connection_limit,
                                                         bandwidth_mbps),
                            thresholds=thresholds, baseline_id=baseline_id)
    except CapkitError as exc:
        if junit_path:
            _write(junit_path, junit_xml([GateResult("analysis", False, float("nan"), float("nan"), str(exc))],
                                         suite=suite))
        raise
    if junit_path:
        _write(junit_path, junit_xml(results, suite=suite))
    for r in results:
        click.echo(f"{'PASS' if r.passed else 'FAIL'}  {r.name:<28} {r.message}")
    failed = sum(not r.passed for r in results)
    if failed:
        raise GateFailure(f"run {run_id} breached {failed} gate(s)")


def _write(path: str | Path, text: str) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")


@click.command()
@click.argument("csv_file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--bootstrap", type=click.IntRange(0, 100_000), default=200, show_default=True)
@click.option("--seed", "seed_", type=int, default=0, show_default=True)
def usl(csv_file, as_json, bootstrap, seed_):
    """Fit the Universal Scalability Law to CSV_FILE (columns: concurrency, throughput)."""
    from capkit.analysis.present.sentences import usl_report

    click.echo(usl_report(csv_file, as_json=as_json, bootstrap=bootstrap, seed=seed_))


@click.command("what-if")
@click.argument("run_id")
@click.option("--mix", "mix", required=True, help="Class weights to predict for, e.g. chat=8,analytics=1,ws=2.")
@click.option("--users", type=click.FloatRange(min=0, min_open=True), help="Concurrent users (default 100).")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), help="Requests/s of the classes instead of users.")
@click.option("--store", "store_url", help="Results store URL.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the answer here (per resource: predicted, low, high, limit; binding limit; users per "
                   "replica).")
@limit_options
def what_if(run_id, mix, users, rate, store_url, json_path, cpu_limit, memory_limit_mib, db_connection_limit,
            bandwidth_mbps):
    """Predict each resource, the binding limit and users per replica for a traffic mix RUN_ID never ran,
    from its per-class demands (fitted on a `capkit run --design mix` run)."""
    import json

    from capkit.analysis.answer.whatif import mix_model
    from capkit.analysis.data.read import read_run
    from capkit.analysis.design.mixes import parse_mix
    from capkit.store import open_store

    if users is not None and rate is not None:
        raise ConfigError("give --users or --rate, not both")
    weights = parse_mix(mix)
    store = open_store(settings(store_url=store_url).store_url, create=False)
    model = mix_model(read_run(store, run_id), limits(cpu_limit, memory_limit_mib, db_connection_limit,
                                                      bandwidth_mbps))
    answer = model.what_if(weights, users=users, rate=rate)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(answer.to_dict(), indent=2) + "\n", encoding="utf-8")
    click.echo(answer.summary())


@click.command("notebooks")
@click.argument("folder", required=False, default="notebooks", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite notebooks of the same name already in FOLDER.")
@click.option("--register-kernel", is_flag=True,
              help="Also register this environment's Python as the Jupyter kernel 'capkit' for your user "
                   "(python -m ipykernel install --user --name capkit) and open the copies with it.")
def notebooks_command(folder, force, register_kernel):
    """Copy the parameterised report notebooks into FOLDER (default: ./notebooks) to analyse runs in Jupyter."""
    import sys

    from capkit.report.notebooks import ANALYST_KERNEL, ANALYST_KERNEL_DISPLAY, copy_notebooks
    from capkit.report.notebooks import register_kernel as register

    kernel = None
    if register_kernel:
        kernel_dir = register(ANALYST_KERNEL, ANALYST_KERNEL_DISPLAY)
        kernel = ANALYST_KERNEL
    copies = copy_notebooks(folder, force=force, kernel=kernel)
    click.echo(f"copied {len(copies)} notebooks to {folder}: {', '.join(c.name for c in copies)}")
    click.echo("Their defaults analyse the latest run of runs/capkit.sqlite in the folder Jupyter runs them in "
               "or a parent (else CAPKIT_STORE_URL); set run_id in the parameters cell for another run.")
    if kernel:
        click.echo(f"registered the Jupyter kernel {ANALYST_KERNEL!r} ({ANALYST_KERNEL_DISPLAY}) in {kernel_dir}; "
                   "the copies open with it in any Jupyter")
    else:
        jupyter = Path(sys.executable).parent / "jupyter"
        click.echo(f"Open them with capkit's own JupyterLab: {jupyter} lab {folder}\n"
                   f"or, for a Jupyter of your own, register capkit's kernel and pick {ANALYST_KERNEL_DISPLAY!r}: "
                   f"{sys.executable} -m ipykernel install --user --name {ANALYST_KERNEL} "
                   f"--display-name '{ANALYST_KERNEL_DISPLAY}' (or rerun with --register-kernel)")


COMMANDS = (report, check, usl, what_if, notebooks_command)
