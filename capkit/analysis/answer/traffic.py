"""The traffic a scaling plan is made for: concurrent users over time.

From a CSV of ``time,users``, or of ``time,arrivals_per_s`` and a session length (Little's law:
users = arrivals/s × session seconds), from a peak alone (the bundled weekday scaled to it), or the
bundled weekday as it is (:data:`EXAMPLE_DAY`: an office-hours service, 5-minute rows, 400 users at
its peak). Each row's users hold until the next row's time (a step function: a step in traffic is
two rows); the last row holds for the median gap between rows.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from capkit.errors import ConfigError

EXAMPLE_DAY = "weekday.csv"  # beside this module, in the package
_HEADROOM = re.compile(r"^\s*N\s*(?:\+\s*(\d+))?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Traffic:
    """Concurrent users: ``users[i]`` from ``t_s[i]`` until ``t_s[i + 1]`` (the last until ``end_s``)."""

    t_s: np.ndarray  # seconds from the first row, increasing
    users: np.ndarray
    end_s: float
    source: str  # what it is, for the page: "the bundled weekday", a file name, …

    @property
    def peak(self) -> float:
        return float(self.users.max())

    @property
    def durations_s(self) -> np.ndarray:
        return np.diff(np.append(self.t_s, self.end_s))

    def scaled(self, factor: float, why: str = "") -> "Traffic":
        """Every row × ``factor`` (a forecast's growth)."""
        return Traffic(self.t_s, self.users * factor, self.end_s, self.source + (f", {why}" if why else ""))

    def frame(self) -> pd.DataFrame:
        """``time_h, users``: the rows, hours from the start."""
        return pd.DataFrame({"time_h": self.t_s / 3600, "users": self.users})


def parse_headroom(text) -> int:
    """Spare replicas from ``N+k`` (``N+1``: one may fail or be deployed) or ``N`` (none)."""
    if isinstance(text, int) and not isinstance(text, bool) and text >= 0:
        return text
    m = _HEADROOM.match(str(text))
    if not m:
        raise ConfigError(f"headroom {text!r} is not of the form N+k (e.g. N+1, N+2, or N for none)")
    return int(m.group(1) or 0)


def example_day() -> Traffic:
    """The bundled weekday (:data:`EXAMPLE_DAY`)."""
    with resources.as_file(resources.files(__package__) / EXAMPLE_DAY) as path:
        return traffic_from_frame(pd.read_csv(path), source="the bundled weekday")


def peak_traffic(peak_users: float) -> Traffic:
    """The bundled weekday's shape scaled so that its peak is ``peak_users``."""
    if not math.isfinite(peak_users) or peak_users <= 0:
        raise ConfigError(f"--peak-users must be a number > 0, got {peak_users!r}")
    day = example_day()
    return Traffic(day.t_s, day.users * peak_users / day.peak, day.end_s,
                   f"the bundled weekday scaled to a peak of {peak_users:,.0f} users")


def read_traffic(path, *, session_minutes: float | None = None) -> Traffic:
    """Read a traffic CSV: ``time,users``, or ``time,arrivals_per_s`` with ``session_minutes``.

    ``time`` is seconds from the start, a clock time (``08:30``) or a date and time. Raises
    :class:`ConfigError` (one line) for a missing file, missing columns, negative or missing
    values, or times that do not increase.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"traffic file {path} does not exist")
    try:
        frame = pd.read_csv(path, skipinitialspace=True)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ConfigError(f"traffic file {path} is not a CSV: {str(exc).splitlines()[0]}") from None
    return traffic_from_frame(frame, session_minutes=session_minutes, source=path.name)


def traffic_from_frame(frame: pd.DataFrame, *, session_minutes: float | None = None,
                       source: str = "traffic") -> Traffic:
    """:class:`Traffic` from a frame with ``time`` and ``users`` (or ``arrivals_per_s``)."""
    columns = [str(c).strip() for c in frame.columns]
    frame = frame.set_axis(columns, axis=1)
    have = ", ".join(columns) or "none"
    if "time" not in columns or not ({"users", "arrivals_per_s"} & set(columns)):
        raise ConfigError(f"traffic {source} needs the columns time,users (or time,arrivals_per_s with "
                          f"--session-minutes); it has {have}")
    if "users" in columns and "arrivals_per_s" in columns:
        raise ConfigError(f"traffic {source} has both users and arrivals_per_s: keep one")
    if len(frame) == 0:
        raise ConfigError(f"traffic {source} has no rows")
    column = "users" if "users" in columns else "arrivals_per_s"
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(float)
    bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
    if bad.size:
        value = frame[column].iloc[bad[0]]
        raise ConfigError(f"traffic {source}: {column} must be numbers ≥ 0; row {bad[0] + 2} has "
                          f"{'nothing' if pd.isna(value) else value}")
    if column == "arrivals_per_s":
        if session_minutes is None or not session_minutes > 0:
            raise ConfigError(f"traffic {source} gives arrivals_per_s: --session-minutes (the mean session "
                              f"length) turns them into concurrent users")
        values = values * session_minutes * 60.0  # Little's law: L = λ W
    elif session_minutes is not None:
        raise ConfigError(f"traffic {source} gives users already: --session-minutes is for arrivals_per_s")
    t = _seconds(frame["time"], source)
    if len(t) > 1 and not (np.diff(t) > 0).all():
        row = int(np.flatnonzero(np.diff(t) <= 0)[0]) + 3
        raise ConfigError(f"traffic {source}: times must increase, row {row} does not")
    if values.max() <= 0:
        raise ConfigError(f"traffic {source} has no users at any time")
    gap = float(np.median(np.diff(t))) if len(t) > 1 else 3600.0
    return Traffic(t - t[0], values, float(t[-1] - t[0] + gap), source)


def _seconds(times: pd.Series, source: str) -> np.ndarray:
    numeric = pd.to_numeric(times, errors="coerce")
    if numeric.notna().all():
        return numeric.to_numpy(float)
    try:
        stamps = pd.to_datetime(times.astype(str), format="mixed")
    except (ValueError, TypeError):
        raise ConfigError(f"traffic {source}: time must be seconds, a clock time (08:30) or a date and time; "
                          f"{times.iloc[0]!r} is none of them") from None
    return ((stamps - stamps.iloc[0]).dt.total_seconds()).to_numpy(float)


def traffic_for(traffic=None, *, peak_users: float | None = None, session_minutes: float | None = None) -> Traffic:
    """The traffic ``capkit scale`` and the Scaling plan page plan for: the CSV ``traffic``, else the
    bundled weekday scaled to ``peak_users``, else the bundled weekday as it is."""
    if traffic is not None and peak_users is not None:
        raise ConfigError("give --traffic FILE or --peak-users N, not both (--growth scales either)")
    if traffic is not None:
        return read_traffic(traffic, session_minutes=session_minutes)
    if session_minutes is not None:
        raise ConfigError("--session-minutes turns a --traffic file's arrivals_per_s into users; there is no file")
    return peak_traffic(float(peak_users)) if peak_users is not None else example_day()
