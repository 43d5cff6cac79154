"""`status --prometheus FILE`: node-exporter's textfile collector format, one set of samples per `.env`.

The file may serve several `.env` files (label `env_file`): samples of other `.env` files are kept,
this one's replaced, and the file is replaced atomically (node-exporter never reads half a file).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cypht_azure.operations.core.session import parse_time
from cypht_azure.operations.unattended import audit, toolfiles

EXPIRY = "cypht_azure_secret_expiry_timestamp_seconds"
LAST_RUN = "cypht_azure_last_run_timestamp_seconds"
LAST_SUCCESS = "cypht_azure_last_run_success"
METRICS: dict[str, str] = {
    EXPIRY: "When the client secret that .env holds expires, as Unix time; 0 when .env holds none the app knows.",
    LAST_RUN: "When rotate-secret or provision last ran for this .env, as Unix time; 0 when never.",
    LAST_SUCCESS: "1 when that run succeeded (also when there was nothing to do), 0 when it failed or never ran.",
}
_SAMPLE = re.compile(r'^(?P<name>[a-z_]+)\{env_file="(?P<label>(?:[^"\\]|\\.)*)"\} (?P<value>\S+)$')


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def _timestamp(iso: str | None) -> float:
    when = parse_time(iso)
    return when.timestamp() if when else 0.0


def samples(expires: str | None, last_run: Mapping[str, Any] | None) -> dict[str, float]:
    return {
        EXPIRY: _timestamp(expires),
        LAST_RUN: _timestamp(last_run.get("time")) if last_run else 0.0,
        LAST_SUCCESS: 1.0 if last_run and last_run.get("exit_code") == 0 else 0.0,
    }


def _read(text: str | None) -> dict[str, dict[str, str]]:
    """Samples already in the file, per env_file label (lines we did not write are dropped)."""
    found: dict[str, dict[str, str]] = {}
    for line in (text or "").splitlines():
        match = _SAMPLE.match(line)
        if match and match["name"] in METRICS:
            found.setdefault(unescape(match["label"]), {})[match["name"]] = match["value"]
    return found


def render(per_env: Mapping[str, Mapping[str, str]]) -> str:
    lines: list[str] = []
    for name, help_text in METRICS.items():
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        for env_file in sorted(per_env):
            if name in per_env[env_file]:
                lines.append(f'{name}{{env_file="{escape(env_file)}"}} {per_env[env_file][name]}')
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


# Concurrent `status --prometheus` runs for different .env files share the file: each reads, merges and
# replaces it under this lock (next to it), so none drops another's samples. status changes nothing in
# Graph or .env, so it may wait, but never for ever.
LOCK_WAIT = 10.0


class LockBusy(OSError):
    """The textfile's lock stayed held: the command fails (exit 1) and says so."""


def update(path: Path, env_file: Path, expires: str | None, *, lock_wait: float = LOCK_WAIT) -> None:
    """Write this `.env`'s samples into the textfile at `path`, keeping other `.env` files' samples.

    Only in a folder that root or this user owns and no one else can write (node-exporter's textfile
    folder is root's); the file is replaced atomically (temporary file + rename) under a lock."""
    label = os.path.realpath(env_file)
    last = audit.last_run(env_file)
    with toolfiles.SafeFolder(path.parent, public=True) as folder:
        lock = f".{path.name}.lock"
        with folder.locked(lock, lock_wait) as held:
            if not held:
                raise LockBusy(f"another process held {folder.path / lock} for {lock_wait:.0f} s; "
                               f"{path} was not updated")
            per_env = _read(folder.read_text(path.name))
            per_env[label] = {name: _number(v) for name, v in samples(expires, last).items()}
            folder.write_atomic(path.name, render(per_env), toolfiles.PUBLIC)
