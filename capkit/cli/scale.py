"""`capkit scale`: from a run's measured capacity to an autoscaling plan, its manifests and its page."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import click

from capkit.cli.options import criteria, criteria_options, limit_options, limits, settings
from capkit.errors import CapkitError, ConfigError

SCALING_NOTEBOOK = "scaling_plan.ipynb"


@click.command()
@click.argument("run_id", required=False)
@click.option("--store", "store_url", help="Results store URL.")
@click.option("--peak-users", type=click.FloatRange(min=0, min_open=True),
              help="Plan for this peak: the bundled weekday scaled to it (default: the bundled weekday, 400 users "
                   "at its peak).")
@click.option("--traffic", "traffic_path", type=click.Path(dir_okay=False, path_type=Path),
              help="A CSV of time,users (or time,arrivals_per_s with --session-minutes); time in seconds, a clock "
                   "time (08:30) or a date and time; each row holds until the next.")
@click.option("--session-minutes", type=click.FloatRange(min=0, min_open=True),
              help="Mean session length: turns --traffic's arrivals_per_s into concurrent users (Little's law).")
@click.option("--growth", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Forecast factor on the traffic (1.3: 30 % more users).")
@click.option("--headroom", default="N+1", show_default=True, help="Spare replicas: N+k (N for none).")
@click.option("--replica-cost", type=click.FloatRange(min=0), help="Cost of one replica-hour (any currency).")
@click.option("--risk", type=click.FloatRange(0, 0.5, min_open=True, max_open=True), default=0.01,
              show_default=True, help="Breach probability at the peak the replicas for risk are planned for.")
@click.option("--target-share", type=click.FloatRange(0, 1, min_open=True), default=0.8, show_default=True,
              help="The autoscaler aims each replica at this share of its planning figure.")
@click.option("--pod-start", "pod_start_s", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Seconds from a scale-up decision to a ready pod.")
@click.option("--sync-period", "sync_s", type=click.FloatRange(min=0, min_open=True), default=15.0,
              show_default=True, help="Seconds between the autoscaler's decisions.")
@click.option("--stabilization", "stabilization_s", type=click.FloatRange(min=0), default=300.0, show_default=True,
              help="Scale-down stabilization window, seconds.")
@click.option("--tolerance", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True,
              help="The autoscaler leaves the replicas alone while metric / target is within 1 ± this.")
@click.option("--name", "app_name", default="capkit", show_default=True,
              help="Name of the Deployment and HorizontalPodAutoscaler.")
@click.option("--image", default="capkit-service:latest", show_default=True, help="The Deployment's image.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the plan here (users per replica, replicas at the peak and for the risk, the signal, "
                   "minutes over p95, replica-hours, the manifests).")
@click.option("--no-page", is_flag=True, help="Skip the Scaling plan page (papermill): manifests and text only.")
@click.option("--bootstrap", type=click.IntRange(0, 100_000), default=200, show_default=True,
              help="Bootstrap resamples of the USL and latency intervals.")
@criteria_options
@limit_options
def scale(run_id, store_url, peak_users, traffic_path, session_minutes, growth, headroom, replica_cost, risk,
          target_share, pod_start_s, sync_s, stabilization_s, tolerance, app_name, image, json_path, no_page, bootstrap,
          p95_ms, p95_critical_ms, max_error_rate, cpu_limit, memory_limit_mib, db_connection_limit, bandwidth_mbps):
    """An autoscaling plan for RUN_ID (default: the latest run): replicas over the traffic, the signal to
    scale on (from the binding limit), Kubernetes manifests under reports/RUN_ID/k8s/, the policy replayed
    beside a static plan, the peak's breach probability, and the Scaling plan page."""
    from capkit.analysis.answer.autoscale import HpaTiming
    from capkit.analysis.answer.parameters import ReportParameters
    from capkit.analysis.answer.result import analyse_run
    from capkit.analysis.answer.scaling import scaling_plan
    from capkit.analysis.answer.traffic import parse_headroom, traffic_for
    from capkit.analysis.data.read import read_run
    from capkit.analysis.present.scaling_page import scaling_lines
    from capkit.deploy.k8s import manifests, validate
    from capkit.store import open_store

    s = settings(store_url=store_url)
    spare = parse_headroom(headroom)  # bad input fails before any work
    traffic = traffic_for(traffic_path, peak_users=peak_users, session_minutes=session_minutes)
    timing = HpaTiming(sync_s=sync_s, pod_start_s=pod_start_s, stabilization_s=stabilization_s, tolerance=tolerance)
    store = open_store(s.store_url, create=False)
    run_id = run_id or store.latest_run_id()
    if not run_id:
        raise CapkitError("the results store holds no runs yet; run `capkit plan` first")
    meta = store.get_run(run_id)
    if meta.spec.service_cores and cpu_limit == 1.0:
        cpu_limit = float(meta.spec.service_cores)
    crit = criteria(meta.spec.criteria, p95_ms=p95_ms, p95_critical_ms=p95_critical_ms, max_error_rate=max_error_rate)
    params = ReportParameters.from_limits(limits(cpu_limit, memory_limit_mib, db_connection_limit, bandwidth_mbps),
                                          bootstrap=bootstrap, criteria=crit)
    result = analyse_run(read_run(store, run_id), params)
    options = dict(growth=growth, headroom=spare, replica_cost=replica_cost, target_share=target_share, risk=risk,
                   timing=timing)
    plan = scaling_plan(result, traffic, **options)
    objects = manifests(plan, name=app_name, image=image)
    validate(objects)  # before anything is written
    folder = Path(s.reports_dir).resolve() / run_id
    if no_page:
        from capkit.deploy.k8s import write_manifests

        written = write_manifests(objects, folder / "k8s")
        page = None
    else:
        written, page = _with_page(s, run_id, objects, params, traffic_path, peak_users, session_minutes, headroom,
                                   options)
    if json_path is not None:
        _write_atomic(json_path, json.dumps(plan.to_json(written), indent=2) + "\n")
    for line in scaling_lines(plan):
        click.echo(line)
    click.echo(f"manifests (validated against Kubernetes schemas): {', '.join(str(p) for p in written)}")
    if page is not None:
        click.echo(f"page: {page}")


def _with_page(s, run_id, objects, params, traffic_path, peak_users, session_minutes, headroom, options):
    """Execute the Scaling plan page and write the manifests beside it, both moved into reports/RUN_ID/ at the end."""
    from capkit.deploy.k8s import write_manifests
    from capkit.report.publish import add_pages
    from capkit.report.workspace import Workspace

    timing = options["timing"]
    scaling = {"target_share": options["target_share"], "risk": options["risk"], "sync_s": timing.sync_s,
               "pod_start_s": timing.pod_start_s, "stabilization_s": timing.stabilization_s,
               "tolerance": timing.tolerance}
    notebook_params = {"traffic": str(Path(traffic_path).resolve()) if traffic_path else None,
                       "peak_users": peak_users, "session_minutes": session_minutes, "growth": options["growth"],
                       "headroom": headroom, "replica_cost": options["replica_cost"], "scaling": scaling}
    with Workspace(Path(s.reports_dir), s.store_url) as workspace:
        write_manifests(objects, workspace.folder / "k8s")
        pages = add_pages(run_id, (SCALING_NOTEBOOK,), workspace=workspace, parameters=notebook_params,
                          overrides=params.overrides())
    folder = Path(s.reports_dir).resolve() / run_id / "k8s"
    return [folder / name for name in objects], pages[0]


def _write_atomic(path: Path, text: str) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None


COMMANDS = (scale,)
