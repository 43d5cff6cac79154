"""The audit log: one JSON line per run that changed or tried to change something, and each `.env`'s
last run (for `status --prometheus`).

`audit.log` in `toolfiles.log_dir()`, mode 0600 (0640 for root), rotated to `audit.log.1` …
`audit.log.3` past `MAX_BYTES`. A line holds the time, the command, the app, the `.env`, the key IDs
added and removed, the deploy hooks' results and the exit code — never a secret: `write` refuses a
line that contains any value it is told is secret, and `Secret` renders as `<hidden>` anyway.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Sequence
from contextlib import suppress
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


# The lock guards rotation and last-runs.json (a read-modify-write). A run takes it only after its commit
# point, so it never waits: a line is appended anyway (one O_APPEND write needs no lock) and the rest is
# left to the next run, with a warning. LOCK_WAIT is the most any call waits (0: one try).
LOCK_NAME = ".lock"
LOCK_WAIT = 0.0


class LockBusy(RuntimeError):
    """Another process holds the audit log's lock: what needs it was skipped (a warning, never an error)."""


def _rotate(folder: toolfiles.SafeFolder) -> None:
    for n in range(KEEP - 1, 0, -1):
        if folder.exists(f"{LOG_NAME}.{n}"):
            folder.rename(f"{LOG_NAME}.{n}", f"{LOG_NAME}.{n + 1}")
    folder.rename(LOG_NAME, f"{LOG_NAME}.1")


def write(entry: Entry, *, secrets: Sequence[Secret] = (), folder: Path | None = None,
          lock_wait: float = LOCK_WAIT) -> Path:
    """Append the entry (rotating first when the file would pass MAX_BYTES); record the last run.

    Raises LockBusy after appending when the lock was held elsewhere (rotation and last run skipped),
    toolfiles.UntrustedFolder (an OSError) when another user could change the folder."""
    line = render(entry, secrets)
    with toolfiles.SafeFolder(folder or toolfiles.log_dir()) as safe:
        with safe.locked(LOCK_NAME, lock_wait) as held:
            size = safe.size(LOG_NAME)
            if held and size is not None and size + len(line) + 1 > MAX_BYTES:
                _rotate(safe)
            safe.append_line(LOG_NAME, line, toolfiles.log_mode())
            if held and entry.env_file:
                _record_last_run(safe, entry)
        if not held:
            raise LockBusy(f"another process holds {safe.path / LOCK_NAME}: the line was appended to "
                           f"{safe.path / LOG_NAME}, the last run not recorded")
        return safe.path / LOG_NAME


def read(count: int, *, folder: Path | None = None) -> list[dict[str, Any]]:
    """The last `count` entries, oldest first (reading into the rotated files when needed)."""
    try:
        safe = toolfiles.SafeFolder(folder or toolfiles.log_dir(), create=False)
    except FileNotFoundError:
        return []
    entries: list[dict[str, Any]] = []
    with safe:
        for name in [LOG_NAME] + [f"{LOG_NAME}.{n}" for n in range(1, KEEP + 1)]:
            for text in reversed((safe.read_text(name) or "").splitlines()):
                with suppress(ValueError):
                    entries.append(json.loads(text))
                if len(entries) >= count:
                    return list(reversed(entries))
    return list(reversed(entries))


# Last run per .env, for `status --prometheus`: also runs that changed nothing (a due check).
def record_last_run(env_file: Path, *, command: str, exit_code: int, folder: Path | None = None,
                    lock_wait: float = LOCK_WAIT) -> None:
    with toolfiles.SafeFolder(folder or toolfiles.log_dir()) as safe, safe.locked(LOCK_NAME, lock_wait) as held:
        if not held:
            raise LockBusy(f"another process holds {safe.path / LOCK_NAME}: the last run was not recorded")
        _record_last_run(safe, Entry(command=command, exit_code=exit_code, env_file=str(env_file)))


def _record_last_run(folder: toolfiles.SafeFolder, entry: Entry) -> None:
    runs = _parse_last_runs(folder.read_text(LAST_RUNS_NAME))
    runs[os.path.realpath(str(entry.env_file))] = {"time": entry.time or now_iso(), "command": entry.command,
                                                   "exit_code": entry.exit_code}
    folder.write_atomic(LAST_RUNS_NAME, json.dumps(runs, indent=1, sort_keys=True) + "\n", toolfiles.log_mode())


def _parse_last_runs(text: str | None) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(text or "")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def last_run(env_file: Path, *, folder: Path | None = None) -> dict[str, Any] | None:
    try:
        with toolfiles.SafeFolder(folder or toolfiles.log_dir(), create=False) as safe:
            text = safe.read_text(LAST_RUNS_NAME)
    except FileNotFoundError:
        return None
    return _parse_last_runs(text).get(os.path.realpath(str(env_file)))
