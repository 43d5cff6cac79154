"""The tool's own files (audit log, last runs, deploy hooks, schedule credentials): where they live for
root and for other users, and the modes they get. Every owner/mode rule of these files is here.

root:   /etc/cypht-azure (configuration, hooks), /var/log/cypht-azure (audit log, last runs)
others: $XDG_CONFIG_HOME/cypht-azure, $XDG_STATE_HOME/cypht-azure (~/.config, ~/.local/state)
CYPHT_AZURE_HOOKS_DIR and CYPHT_AZURE_LOG_DIR override the two folders that runs use; a --sandbox run
logs under its sandbox folder (SANDBOX_DIR/log), whatever the user.

The audit log, last runs and Prometheus textfile are written through `SafeFolder`: only in a folder
that root or this user owns and no one else can write (checked up from /), every file opened with
O_NOFOLLOW relative to the folder's descriptor and checked with fstat, every lock tried with a time-out.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import stat
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
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


_sandbox_logs: Path | None = None


def log_in_sandbox(state_dir: Path) -> None:
    """A --sandbox run: its audit log and last runs go under the sandbox's folder, never root's log."""
    global _sandbox_logs
    _sandbox_logs = Path(os.path.abspath(state_dir)) / "log"


def log_dir(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    if _sandbox_logs is not None:
        return _sandbox_logs
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


# --- root's own files: opened only in a folder no one else can change, never through a link ------------------

LOCK_POLL_SECONDS = 0.05


class UntrustedFolder(OSError):
    """A folder of ours that another user could change: nothing of ours is written there."""


def trust_problem(st: os.stat_result, path: Path, *, group_may_write: bool = False) -> str | None:
    """cron's and sudo's rule for one folder: owned by root or by us, writable by no one else (a root
    folder with the sticky bit, as /tmp, lets others add entries but never replace ours).

    `group_may_write` relaxes it for the folders above ours, which some systems make group-writable
    (Ubuntu's /var/log is root:syslog 0775): a folder swapped in below them is caught by the check of
    our own folder after it is opened."""
    if st.st_uid not in (0, os.geteuid()):
        return f"{path} is owned by uid {st.st_uid}, not by root or this user"
    mode = stat.S_IMODE(st.st_mode)
    writable = mode & (0o002 if group_may_write else 0o022)
    if writable and not (mode & stat.S_ISVTX and st.st_uid == 0):
        return f"{path} is writable by its group or others (mode {mode:04o})"
    return None


class SafeFolder:
    """One of our folders, opened once (O_NOFOLLOW) after checking it and every folder above it; files
    in it are opened relative to that descriptor with O_NOFOLLOW and checked with fstat after the open."""

    def __init__(self, path: Path, *, create: bool = True, public: bool = False) -> None:
        if create:
            existing = Path(os.path.abspath(path))
            while not existing.exists() and existing != existing.parent:
                existing = existing.parent
            self._check_chain(existing, ours=existing == Path(os.path.abspath(path)))  # before creating below it
            ensure_dir(Path(path), public=public)
        self.path = self._check_chain(Path(path))
        self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        why = trust_problem(os.fstat(self.fd), self.path)
        if why:
            os.close(self.fd)
            raise UntrustedFolder(why)

    @staticmethod
    def _check_chain(path: Path, *, ours: bool = True) -> Path:
        """The real path, after checking it folder by folder: a link on the way counts as what it names
        and is only as safe as the folder holding it, which is checked too."""
        real = Path(os.path.realpath(path))
        for folder in [*reversed(real.parents), real]:
            why = trust_problem(os.lstat(folder), folder, group_may_write=not (ours and folder == real))
            if why:
                raise UntrustedFolder(f"{why}; another user could redirect or block what cypht-azure writes there")
        return real

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> SafeFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self, name: str, flags: int, mode: int = PRIVATE) -> int:
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=self.fd)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            os.close(fd)
            raise UntrustedFolder(f"{self.path / name} is not a regular file of this user")
        return fd

    def read_text(self, name: str) -> str | None:
        """The file's text, or None when it does not exist."""
        try:
            fd = self._open(name, os.O_RDONLY)
        except FileNotFoundError:
            return None
        with os.fdopen(fd, "r", encoding="utf-8") as f:
            return f.read()

    def size(self, name: str) -> int | None:
        try:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False).st_size
        except FileNotFoundError:
            return None

    def append_line(self, name: str, line: str, mode: int) -> None:
        """One write with O_APPEND: concurrent runs never interleave inside a line, with or without a lock."""
        fd = self._open(name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, mode)
        try:
            os.write(fd, (line.rstrip("\n") + "\n").encode("utf-8"))
        finally:
            os.close(fd)

    def write_atomic(self, name: str, text: str, mode: int) -> None:
        temp = f".{name}.{secrets.token_hex(6)}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=self.fd)
        try:
            try:
                _fill(fd, text, mode)
            finally:
                os.close(fd)
            os.replace(temp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(temp, dir_fd=self.fd)
            raise

    def rename(self, old: str, new: str) -> None:
        os.replace(old, new, src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def exists(self, name: str) -> bool:
        return self.size(name) is not None

    @contextmanager
    def locked(self, name: str, timeout: float) -> Iterator[bool]:
        """Hold an flock on `name` (a file of ours, 0600), trying for at most `timeout` seconds (0: once).
        Yields whether it is held: the caller decides what to do without it; nothing waits longer."""
        fd = self._open(name, os.O_RDWR | os.O_CREAT, PRIVATE)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    held = True
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        held = False
                        break
                    time.sleep(LOCK_POLL_SECONDS)
            yield held
        finally:
            os.close(fd)
