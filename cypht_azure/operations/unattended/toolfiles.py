"""The tool's own files (audit log, last runs, deploy hooks, schedule credentials): where they live for
root and for other users, and the modes they get. Every owner/mode rule of these files is here.

root:   /etc/cypht-azure (configuration, hooks), /var/log/cypht-azure (audit log, last runs)
others: $XDG_CONFIG_HOME/cypht-azure, $XDG_STATE_HOME/cypht-azure (~/.config, ~/.local/state)
CYPHT_AZURE_HOOKS_DIR and CYPHT_AZURE_LOG_DIR override the two folders that runs use.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path

from cypht_azure.envdisk.fileio import write_all

LOG_DIR_ENV = "CYPHT_AZURE_LOG_DIR"
PRIVATE = 0o600          # credentials, state of a user
ROOT_LOG = 0o640         # root's logs: readable by the group (adm-style), as /var/log/* are
PUBLIC = 0o644           # what another daemon must read (node-exporter's textfile)


def is_root() -> bool:
    return os.geteuid() == 0


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    if is_root():
        return Path("/etc/cypht-azure")
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME") or Path.home()) / ".config")
    return Path(base) / "cypht-azure"


def log_dir(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    if environ.get(LOG_DIR_ENV):
        return Path(environ[LOG_DIR_ENV])
    if is_root():
        return Path("/var/log/cypht-azure")
    base = environ.get("XDG_STATE_HOME") or str(Path(environ.get("HOME") or Path.home()) / ".local" / "state")
    return Path(base) / "cypht-azure"


def log_mode() -> int:
    return ROOT_LOG if is_root() else PRIVATE


def ensure_dir(path: Path, *, public: bool = False) -> None:
    """Create a folder of ours: readable only by its owner (and root's group for logs), or by all when
    it is to hold a file others read (a unit file, node-exporter's textfile)."""
    path.mkdir(mode=0o755 if public else 0o750 if is_root() else 0o700, parents=True, exist_ok=True)


def write_atomic(path: Path, text: str, mode: int) -> None:
    """Replace `path` with `text` (temporary file of `mode` next to it, fsync, rename)."""
    ensure_dir(path.parent, public=bool(mode & 0o004))
    temp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        try:
            _fill(fd, text, mode)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def create_exclusive(path: Path, text: str, mode: int) -> bool:
    """Create `path` with `text` unless it exists (never overwrite what an admin filled in)."""
    ensure_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except FileExistsError:
        return False
    try:
        _fill(fd, text, mode)
    finally:
        os.close(fd)
    return True


def _fill(fd: int, text: str, mode: int) -> None:
    """Give a new file exactly `mode` (the umask must not widen or narrow it), all of `text`, and fsync."""
    os.fchmod(fd, mode)
    write_all(fd, text.encode("utf-8"))
    os.fsync(fd)


def append_line(path: Path, line: str, mode: int) -> None:
    """Append one line with one write (O_APPEND: concurrent runs never interleave inside a line)."""
    ensure_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        os.write(fd, (line.rstrip("\n") + "\n").encode("utf-8"))
    finally:
        os.close(fd)
