"""The audit log: one JSON line per run that changed or tried to change something, and each `.env`'s
last run (for `status --prometheus`).

`audit.log` in `toolfiles.log_dir()`, mode 0600 (0640 for root), rotated to `audit.log.1` …
`audit.log.3` past `MAX_BYTES`. A line holds the time, the command, the app, the `.env`, the key IDs
added and removed, the deploy hooks' results and the exit code — never a secret: `write` refuses a
line that contains any value it is told is secret, and `Secret` renders as `<hidden>` anyway.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from cypht_azure.operations.unattended import toolfiles
from cypht_azure.secret import Secret

LOG_NAME = "audit.log"
LAST_RUNS_NAME = "last-runs.json"
MAX_BYTES = 1024 * 1024
KEEP = 3


@dataclass
class Entry:
    command: str
    exit_code: int
    env_file: str | None = None
    app: str | None = None              # client ID
    added: list[str] = field(default_factory=list)      # secret key IDs
    removed: list[str] = field(default_factory=list)
    hooks: list[dict[str, Any]] = field(default_factory=list)
    changed: bool = False
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    time: str = ""

    def to_json(self) -> dict[str, Any]:
        data = {"time": self.time or now_iso()}
        data |= {f.name: getattr(self, f.name) for f in fields(self) if f.name != "time"}  # shallow: no deep copy
        return {k: v for k, v in data.items() if v not in (None, {}, "")}


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class SecretInLogLine(RuntimeError):
    pass


def render(entry: Entry, secrets: Sequence[Secret] = ()) -> str:
    line = json.dumps(entry.to_json(), sort_keys=False, default=str)
    for secret in secrets:
        if secret.reveal() and secret.reveal() in line:
            raise SecretInLogLine("an audit line would contain a secret; it was not written")
    return line


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    toolfiles.ensure_dir(folder)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, toolfiles.log_mode())
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _rotate(path: Path) -> None:
    for n in range(KEEP - 1, 0, -1):
        older = path.with_name(f"{path.name}.{n}")
        if older.exists():
            os.replace(older, path.with_name(f"{path.name}.{n + 1}"))
    os.replace(path, path.with_name(f"{path.name}.1"))


def write(entry: Entry, *, secrets: Sequence[Secret] = (), folder: Path | None = None) -> Path:
    """Append the entry (rotating first when the file would pass MAX_BYTES); record the last run."""
    folder = folder or toolfiles.log_dir()
    line = render(entry, secrets)
    path = folder / LOG_NAME
    with _locked(folder):
        with suppress(FileNotFoundError):
            if path.stat().st_size + len(line) + 1 > MAX_BYTES:
                _rotate(path)
        toolfiles.append_line(path, line, toolfiles.log_mode())
        if entry.env_file:
            _record_last_run(folder, entry)
    return path


def read(count: int, *, folder: Path | None = None) -> list[dict[str, Any]]:
    """The last `count` entries, oldest first (reading into the rotated files when needed)."""
    folder = folder or toolfiles.log_dir()
    files = [folder / LOG_NAME] + [folder / f"{LOG_NAME}.{n}" for n in range(1, KEEP + 1)]
    entries: list[dict[str, Any]] = []
    for path in files:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            continue
        for text in reversed(lines):
            with suppress(ValueError):
                entries.append(json.loads(text))
            if len(entries) >= count:
                return list(reversed(entries))
    return list(reversed(entries))


# Last run per .env, for `status --prometheus`: also runs that changed nothing (a due check).
def record_last_run(env_file: Path, *, command: str, exit_code: int, folder: Path | None = None) -> None:
    folder = folder or toolfiles.log_dir()
    with _locked(folder):
        _record_last_run(folder, Entry(command=command, exit_code=exit_code, env_file=str(env_file)))


def _record_last_run(folder: Path, entry: Entry) -> None:
    path = folder / LAST_RUNS_NAME
    runs = _read_last_runs(path)
    runs[os.path.realpath(str(entry.env_file))] = {"time": entry.time or now_iso(), "command": entry.command,
                                                   "exit_code": entry.exit_code}
    toolfiles.write_atomic(path, json.dumps(runs, indent=1, sort_keys=True) + "\n", toolfiles.log_mode())


def _read_last_runs(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def last_run(env_file: Path, *, folder: Path | None = None) -> dict[str, Any] | None:
    folder = folder or toolfiles.log_dir()
    return _read_last_runs(folder / LAST_RUNS_NAME).get(os.path.realpath(str(env_file)))
