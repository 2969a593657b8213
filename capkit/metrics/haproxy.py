"""HAProxy's stats page (CSV) as resource samples: the balancer's queue and the replicas it sends to."""

from __future__ import annotations

import csv
import io

import httpx


class HAProxyCollector:
    """The balancer's stats page: ``lb_queue`` (requests waiting for a replica),
    ``lb_in_flight`` (requests at the replicas), ``lb_replicas_up`` and ``lb_retries``/``lb_redispatched``
    (cumulative: requests sent to another replica after a failed connection)."""

    source = "balancer"

    def __init__(self, stats_url: str):
        self.url = stats_url.rstrip("/") + ";csv"
        self._client = httpx.Client(timeout=2.0)

    def sample(self) -> dict[str, float]:
        try:
            text = self._client.get(self.url).text
        except httpx.HTTPError:
            return {}
        rows = list(csv.DictReader(io.StringIO(text.lstrip("# "))))
        servers = [r for r in rows if r.get("pxname") == "replicas" and r.get("svname") not in ("FRONTEND", "BACKEND")]
        backend = next((r for r in rows if r.get("pxname") == "replicas" and r.get("svname") == "BACKEND"), None)
        if backend is None:
            return {}

        def num(row, key):
            try:
                return float(row.get(key) or 0)
            except ValueError:
                return 0.0

        return {"lb_queue": num(backend, "qcur"), "lb_in_flight": num(backend, "scur"),
                "lb_replicas_up": float(sum(1 for r in servers if (r.get("status") or "").startswith("UP"))),
                "lb_retries": num(backend, "wretr"), "lb_redispatched": num(backend, "wredis")}

    def close(self) -> None:
        self._client.close()


__all__ = ["HAProxyCollector"]
