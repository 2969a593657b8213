"""capkit: measured capacity planning for HTTP services.

The packages, in the order a run flows through them (each may import only those above it):

- ``config``, ``schemas``, ``errors`` — settings (``CAPKIT_*``), the data contracts (stage plan,
  run spec and metadata, limits, :class:`~capkit.schemas.Interval`, :class:`~capkit.schemas.NotMeasured`),
  the error types.
- ``records`` — raw record formats: HDR histograms, per-second request rows, JSONL run files.
- ``service`` — the reference chat + analytics service (FastAPI), the default target.
- ``loadgen`` — what runs inside Locust processes: scenarios, the stepped shape, the recorder plugin.
- ``metrics`` — resource collectors: process tree, network, PostgreSQL, Redis, Prometheus.
- ``store`` — the SQL results store and its administration.
- ``runs`` — orchestration: start the service and Locust, sample, ingest, restore, import.
- ``analysis`` — pure analysis of stored runs: steps, regressions, USL, latency, thresholds, gates.
- ``synthetic`` — seeded runs with known truth, for tests and the fixture store.
- ``report`` — `capkit report`: papermill execution of the notebooks and HTML publishing.
- ``cli`` — the `capkit` command, one module per command group.

``docs/architecture.md`` has the import rules and a command → module table. Nothing happens at
import: settings, engines, kernels and Locust are created only when asked for.
"""

__version__ = "0.1.0"
