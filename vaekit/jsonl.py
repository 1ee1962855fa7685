"""The run's JSON-lines logs (metrics.jsonl, steps.jsonl): append a line that is whole or absent,
read them back with a torn last line forgiven, and cut them back to a checkpoint's epoch or step."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from vaekit.errors import VaekitUsageError, warn
from vaekit.files import REFUSED_WRITES, atomic_write_bytes, disk_error


def json_safe(value: Any) -> Any:
    """Replace NaN/inf by None so that every line is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def append_record(path: Path, record: dict) -> None:
    """Append ``record`` as one JSON line; a write the disk refuses is undone, so no half line is
    left behind."""
    line = (json.dumps(json_safe(record), allow_nan=False) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            written = 0
            while written < len(line):
                written += os.write(fd, line[written:])
        except OSError as error:
            os.ftruncate(fd, start)
            if error.errno in REFUSED_WRITES:
                raise disk_error(path, error) from None
            raise
    finally:
        os.close(fd)


def read_records(path: Path, quiet: bool = False) -> list[dict]:
    """The records of a JSON-lines file (none if it is absent). A torn last line (a crash while it
    was written) is skipped with a warning (none when ``quiet``); a bad line anywhere else is an
    error naming the file and the line."""
    if not path.is_file():
        return []
    lines = path.read_text(errors="replace").splitlines()
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    records = []
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            if index == last:
                if not quiet:
                    warn(f"{path}: ignoring its last line, which was cut short (a crash while writing it?); "
                         "--resume drops it from the file")
                continue
            raise VaekitUsageError(f"{path}, line {index + 1}: not a JSON record ({error.msg}); "
                                   "remove or repair that line") from None
        if not isinstance(record, dict):
            raise VaekitUsageError(f"{path}, line {index + 1}: expected a JSON object per line, "
                                   f"got {type(record).__name__}")
        records.append(record)
    return records


def truncate_records(path: Path, last: int, key: str = "epoch") -> list[dict]:
    """Keep the records whose ``key`` is at most ``last`` (and drop a torn last line); returns the
    dropped records."""
    records = read_records(path)
    kept = [r for r in records if r.get(key, 0) <= last]
    text = "".join(json.dumps(r) + "\n" for r in kept)
    atomic_write_bytes(path, lambda h: h.write(text.encode()))
    return [r for r in records if r.get(key, 0) > last]
