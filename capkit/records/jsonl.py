"""Raw run files: one JSON object per line, appended and flushed as the run goes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO


class JsonlWriter:
    """Appends one JSON object per line and flushes, so a killed run keeps what it wrote."""

    def __init__(self, stream: IO[str]):
        self._stream = stream

    def write(self, record: dict) -> None:
        self._stream.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._stream.flush()


def read_new_lines(stream: IO[str]) -> list[dict]:
    """Read the complete lines appended since the last call (a partial last line is left)."""
    out = []
    while True:
        pos = stream.tell()
        line = stream.readline()
        if not line:
            break
        if not line.endswith("\n"):
            stream.seek(pos)
            break
        out.append(json.loads(line))
    return out


def read_jsonl(path: Path) -> list[dict]:
    """Every complete JSON line of ``path`` (a torn last line from a killed process is skipped)."""
    out = []
    if not path.exists():
        return out
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.endswith("\n"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    return out
