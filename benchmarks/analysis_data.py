"""Synthetic store-shaped frames of a given size for the analysis benchmark."""

import numpy as np
import pandas as pd


def synthetic_frames(n_samples: int, metrics: int = 4, steps: int = 6, seed: int = 0):
    """(steps, samples) frames with ``n_samples`` service samples spread over ``steps`` steps."""
    rng = np.random.default_rng(seed)
    per_metric = n_samples // metrics
    ts = np.linspace(0, 1000, per_metric)
    bounds = np.linspace(0, 1000, steps + 1)
    users = np.arange(steps) * 5
    step_of = np.minimum(np.searchsorted(bounds, ts, side="right") - 1, steps - 1)
    frames = []
    names = ["cpu_cores", "rss_mib", "db_connections", "network_kbps"][:metrics]
    for i, name in enumerate(names):
        value = (i + 1) * 0.1 + 0.02 * users[step_of] + rng.normal(0, 0.01, per_metric)
        frames.append(pd.DataFrame({"ts": ts, "source": "service", "metric": name, "value": value}))
    samples = pd.concat(frames, ignore_index=True)
    step_frame = pd.DataFrame({"step": np.arange(steps), "users": users, "started_at": bounds[:-1],
                               "ended_at": bounds[1:], "planned_s": np.diff(bounds), "complete": 1})
    return step_frame, samples
