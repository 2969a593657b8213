"""Approximate mean value analysis of a closed system: users of several classes cycling between a
delay (thinking, everything but the CPU) and one processor-sharing CPU, as PDQ solves closed
models (Bard–Schweitzer).

With ``N_k`` users of class ``k``, CPU demand ``D_k`` per request and delay ``Z_k`` per request:
``R_c = D_c (1 + Σ_k Q_k (N_k − [k = c]) / N_k)``, ``X_c = N_c / (Z_c + R_c)``, ``Q_c = X_c R_c``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["closed_rates", "delays_from_steps"]


def closed_rates(users: dict[str, float], demand: dict[str, float], delay: dict[str, float],
                 *, tol: float = 1e-9, max_iter: int = 500) -> dict[str, float]:
    """Requests/s per user of each class (``users``: users per class; a class with none gets its
    rate without queueing)."""
    n = {c: float(k) for c, k in users.items() if k > 0}
    q = {c: n[c] / 2 for c in n}
    x: dict[str, float] = {}
    for _ in range(max_iter):
        r = {c: demand[c] * (1 + sum(q[k] * (n[k] - (k == c)) / n[k] for k in n)) for c in n}
        x = {c: n[c] / (delay[c] + r[c]) for c in n}
        new = {c: x[c] * r[c] for c in n}
        if all(abs(new[c] - q[c]) < tol for c in n):
            break
        q = {c: (q[c] + new[c]) / 2 for c in n}
    return {c: x[c] / n[c] if c in n else 1.0 / (delay[c] + demand[c]) for c in users}


def delays_from_steps(steps: pd.DataFrame, demand: dict[str, float]) -> dict[str, float] | None:
    """Each class's delay per request, ``Z_c = (Σ n_c − Σ X_c R_c) / Σ X_c`` over ``steps`` (columns
    ``n_<class>``, ``X_<class>``), each step's residences ``R`` solved from its measured throughputs
    (the residence equations are linear in ``R`` once ``X`` is known). None when a class served
    nothing or its delay comes out ≤ 0 (not a closed system this model describes)."""
    classes = list(demand)
    dv = np.array([demand[c] for c in classes])
    busy = dict.fromkeys(classes, 0.0)
    for _, row in steps.iterrows():
        n = np.array([row[f"n_{c}"] for c in classes], float)
        x = np.array([row[f"X_{c}"] for c in classes], float)
        share = np.divide(n - 1, n, out=np.zeros_like(n), where=n > 0)
        a = np.tile(np.where(n > 0, x, 0.0), (len(classes), 1))
        a = a * np.where(np.eye(len(classes)) == 1, share, np.where(n > 0, 1.0, 0.0))
        residence = np.linalg.solve(np.eye(len(classes)) - np.diag(dv) @ a, dv)
        for i, c in enumerate(classes):
            busy[c] += float(x[i] * residence[i])
    delay = {}
    for c in classes:
        total_x = float(steps[f"X_{c}"].sum())
        if total_x <= 0:
            return None
        delay[c] = (float(steps[f"n_{c}"].sum()) - busy[c]) / total_x
        if delay[c] <= 0:
            return None
    return delay
