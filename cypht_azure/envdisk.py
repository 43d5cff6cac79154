"""Cypht's ``.env`` on disk: resolved once, read, checked, locked and replaced through its folder.

The path is resolved once (``open_target``); from then on every step works through a file
descriptor of the folder that holds the file (``dir_fd``, ``O_NOFOLLOW``), so whoever controls a
symlink on the way cannot redirect a later step to another file. The identity (device, inode) and the
bytes read under the lock are checked again right before the commit point, so a writer that does not
take our lock is detected instead of overwritten.

The commit point is the rename of a fully written, fsynced temporary file over the target. A file
that is itself a mount point (Docker's single-file bind mount) cannot be renamed over: it is
rewritten in place, with a backup of the old content beside it until the new content is fsynced and
read back; a run killed in between leaves the backup, which the next run puts back (``locked()``).

Nothing here ever puts a value into an exception message or a repr: values may be secrets.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from cypht_azure.envfile import MAX_ENV_BYTES, EnvDocument, EnvFileError, parse

__all__ = [
    "NEW_FILE_MODE",
    "EnvTarget",
    "check_writable",
    "editing",
    "load",
    "locked",
    "open_target",
    "write_atomic",
]

NEW_FILE_MODE = 0o640
"""A new .env: owner read-write, the folder's group (the web server) read, nobody else."""

_LOCK_POLL_SECONDS = 0.05
_MAX_LINK_HOPS = 40
_TEMP_SUFFIX = ".tmp"
Rebase = Callable[[EnvDocument], str]


def _temp_prefix(name: str) -> str:
    return f".{name}.cypht-azure-"


def _backup_name(name: str) -> str:
    return f".{name}.cypht-azure.backup"


@dataclass(frozen=True)
class FileFacts:
    """What is checked again before the commit point, and what the new file must keep."""

    dev: int
    ino: int
    uid: int
    gid: int
    mode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileFacts:
        return cls(st.st_dev, st.st_ino, st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_size,
                   st.st_mtime_ns)

    @property
    def identity(self) -> tuple[int, int]:
        return self.dev, self.ino


# ------------------------------------------------------------------------------------- resolution


def _resolve(given: Path) -> Path:
    """Follow every symlink of ``given`` once, as the kernel would, checking who owns each link.

    Returns the real path of the file (which may not exist yet). Raises EnvFileError for a link
    another user could re-point (see ``_check_link``), a dangling link or a loop.
    """
    start = given if given.is_absolute() else Path(os.getcwd()) / given
    pending = list(start.parts[1:])
    done = Path("/")
    hops = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            done = done.parent
            continue
        candidate = done / part
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            if hops:  # a link points at something missing
                raise _dangling(given, candidate.joinpath(*pending)) from None
            if pending:
                raise _no_folder(given, candidate) from None
            return candidate
        except NotADirectoryError:
            raise _no_folder(given, candidate) from None
        except OSError as exc:
            raise _os_error(exc, given, "look up") from None
        if not stat.S_ISLNK(st.st_mode):
            done = candidate
            continue
        hops += 1
        if hops > _MAX_LINK_HOPS:
            raise _dangling(given, candidate)
        _check_link(given, candidate, st)
        link = Path(os.readlink(candidate))
        if link.is_absolute():
            done = Path("/")
            pending = list(link.parts[1:]) + pending
        else:
            pending = list(link.parts) + pending
    return done


def _check_link(given: Path, link: Path, st: os.stat_result) -> None:
    """Refuse a link another user may re-point while we work (the kernel's protected_symlinks rule).

    As root, any link not owned by root is refused: the user who owns it (often the web server's
    www-data) could point it at /etc/shadow between our read and our write. Otherwise the kernel's own
    rule applies: in a sticky world-writable folder only the follower's or the folder owner's links.
    """
    euid = os.geteuid()
    if st.st_uid == euid:
        return
    if euid == 0:
        raise EnvFileError(
            f"it goes through the symbolic link {link}, which belongs to user id {st.st_uid}: running as "
            "root, cypht-azure does not follow a link that another user can re-point (the kernel's "
            "protected_symlinks rule).",
            path=given,
            fix=f"Pass the real path instead (--env-file \"$(realpath {given})\"), or let root own the "
                f"link: chown -h root {link}",
        )
    folder = os.stat(link.parent)
    sticky_world = folder.st_mode & stat.S_ISVTX and folder.st_mode & stat.S_IWOTH
    if sticky_world and st.st_uid != folder.st_uid:
        raise EnvFileError(
            f"it goes through the symbolic link {link} of user id {st.st_uid} in a sticky world-writable "
            "folder, which the kernel's protected_symlinks rule forbids following.",
            path=given,
            fix="Pass the real path of the .env file instead.",
        )


# ------------------------------------------------------------------------------------- the target


class EnvTarget:
    """One ``.env``, resolved once; a context manager that closes its folder descriptor.

    ``read()`` the document (under ``locked()`` when it will be written), ``preflight()`` before
    anything is created elsewhere, then ``commit(text)``: the commit point.
    """

    def __init__(self, path: Path, real: Path, folder_fd: int) -> None:
        self.path = path
        self.real = real
        self.folder = real.parent
        self.name = real.name
        self._folder_fd = folder_fd
        self._folder_facts = FileFacts.of(os.fstat(folder_fd))
        self.facts: FileFacts | None = None
        self.mount_point = False
        self.xattrs: dict[str, bytes] = {}
        self._seen: tuple[FileFacts | None, bytes] | None = None
        self._locked = False
        self.document: EnvDocument | None = None
        self._inspect()

    def __repr__(self) -> str:
        return f"EnvTarget(path={self.path!r}, real={self.real!r}, mount_point={self.mount_point})"

    def __enter__(self) -> EnvTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._folder_fd >= 0:
            os.close(self._folder_fd)
            self._folder_fd = -1

    # -- looking at the file, always through the folder's descriptor --

    def _open(self, name: str, flags: int, mode: int = 0o600) -> int | None:
        """Open ``name`` in the folder without following a link; None if it does not exist."""
        try:
            return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=self._folder_fd)
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            raise _is_directory(self.path) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise EnvFileError(
                    f"{self.folder / name} became a symbolic link while cypht-azure was working on it.",
                    path=self.path,
                    fix="Find out who changes the file's folder; then run again.",
                ) from None
            raise _os_error(exc, self.path, "open") from None

    def _inspect(self) -> None:
        """Facts about the file as it is now: type, owner, mode, mount point, extended attributes."""
        fd = self._open(self.name, os.O_RDONLY | os.O_NONBLOCK)
        if fd is None:
            self.facts, self.mount_point, self.xattrs = None, False, {}
            return
        try:
            st = os.fstat(fd)
            _require_regular(st, self.path)
            self.facts = FileFacts.of(st)
            self.mount_point = _mount_id(fd, st) != _mount_id(self._folder_fd, os.fstat(self._folder_fd))
            self.xattrs = _xattrs(fd, self.path)
        finally:
            os.close(fd)

    def _current(self) -> tuple[FileFacts | None, bytes]:
        fd = self._open(self.name, os.O_RDONLY | os.O_NONBLOCK)
        if fd is None:
            return None, b""
        try:
            st = os.fstat(fd)
            _require_regular(st, self.path)
            if st.st_size > MAX_ENV_BYTES:
                raise _too_large(self.path)
            data = _read_all(fd)
            return FileFacts.of(os.fstat(fd)), data
        except OSError as exc:
            raise _os_error(exc, self.path, "read") from None
        finally:
            os.close(fd)

    def read(self, *, environ: Mapping[str, str] | None = None) -> EnvDocument:
        """Read and parse the file (a missing one is an empty document), remembering what was read."""
        facts, data = self._current()
        if len(data) > MAX_ENV_BYTES:
            raise _too_large(self.path)
        self._seen = (facts, data)
        self.document = parse(_decode(data, self.path), self.path, environ=environ)
        return self.document

    # -- checks before anything is created elsewhere --

    def preflight(self) -> None:
        """Every check that must pass before a secret exists: raise EnvFileError naming problem and fix.

        Besides permissions, an empty probe file is created in the folder and given exactly what the
        real new file will get (owner, group, mode, ACLs and other extended attributes), then removed:
        what would fail at the commit point fails here, with no secret anywhere.
        """
        self._inspect()
        self._check_folder_unmoved()
        if os.fstatvfs(self._folder_fd).f_flag & os.ST_RDONLY:
            raise _os_error(OSError(errno.EROFS, os.strerror(errno.EROFS)), self.path, "write")
        if not os.access(".", os.W_OK | os.X_OK, dir_fd=self._folder_fd):
            raise EnvFileError(
                f"its folder {self.folder} is not writable: the file is replaced through a temporary file "
                "next to it (or, for a bind-mounted file, backed up next to it while it is rewritten).",
                path=self.path,
                fix=f"Run as the folder's owner (or root), or grant write access: chmod u+w {self.folder}",
            )
        facts = self.facts
        if facts is not None:
            self._check_file_writable(facts)
        if not self.mount_point:
            self._probe()

    def _check_file_writable(self, facts: FileFacts) -> None:
        euid = os.geteuid()
        if not facts.mode & 0o222 or (euid != 0 and not os.access(self.name, os.W_OK, dir_fd=self._folder_fd)):
            raise EnvFileError(
                f"the file is read-only (mode {facts.mode:04o}); cypht-azure does not rewrite a file made "
                "read-only, even as root.",
                path=self.path,
                fix=f"If it may be changed, make it writable (chmod u+w {self.real}) and run again.",
            )
        if euid != 0 and facts.uid != euid:
            raise EnvFileError(
                f"it belongs to user id {facts.uid}; rewriting it as another user would change its owner.",
                path=self.path,
                fix="Run the tool as the file's owner (e.g. with sudo -u), or as root.",
            )
        if euid != 0 and not self.mount_point and not _may_use_group(facts.gid):
            raise EnvFileError(
                f"its group is group id {facts.gid}, which this user is not a member of: the rewritten file "
                "could not keep that group (chown fails with EPERM), and the web server may lose access.",
                path=self.path,
                fix=f"Run as root, or as a member of group id {facts.gid}.",
            )
        if self.mount_point:
            fd = self._open(self.name, os.O_WRONLY | os.O_NONBLOCK)
            if fd is not None:
                os.close(fd)

    def _owner_and_mode(self) -> tuple[int, int, int, dict[str, bytes]]:
        """uid, gid, mode and extended attributes the new file gets."""
        if self.facts is not None:
            return self.facts.uid, self.facts.gid, self.facts.mode, self.xattrs
        folder = self._folder_facts
        if os.geteuid() == 0:
            return folder.uid, folder.gid, NEW_FILE_MODE, {}
        if not _may_use_group(folder.gid):
            raise EnvFileError(
                f"a new .env gets its folder's group (group id {folder.gid}, so that the web server can read "
                "it with mode 0640), and this user is not a member of that group.",
                path=self.path,
                fix=f"Run as root, or create the file first with the right group: "
                    f"install -m 0640 -g {folder.gid} /dev/null {self.real}",
            )
        return os.geteuid(), folder.gid, NEW_FILE_MODE, {}

    def _probe(self) -> None:
        fd, name = self._new_temp()
        try:
            self._dress(fd)
        finally:
            os.close(fd)
            if name is not None:
                self._unlink(name)

    # -- the lock --

    @contextmanager
    def locked(self, timeout: float = 30.0) -> Iterator[None]:
        """Exclusive flock on the folder; concurrent runs wait up to ``timeout`` seconds.

        The lock is on the folder because the file is replaced by rename (its inode changes) and a
        sidecar lock file would be left behind. Once held, what an interrupted run left is repaired:
        a bind-mounted file is put back from its backup, stale temporary files are removed.
        """
        _acquire(self._folder_fd, self.path, timeout)
        self._locked = True
        try:
            self._recover()
            yield
        finally:
            self._locked = False
            with suppress(OSError):
                fcntl.flock(self._folder_fd, fcntl.LOCK_UN)

    def _recover(self) -> None:
        prefix = _temp_prefix(self.name)
        for entry in os.scandir(self._folder_fd):
            if entry.name.startswith(prefix) and entry.name.endswith(_TEMP_SUFFIX):
                with suppress(OSError):
                    if entry.is_file(follow_symlinks=False):
                        self._unlink(entry.name)  # left by a killed run; may hold a secret
        backup = _backup_name(self.name)
        fd = self._open(backup, os.O_RDONLY | os.O_NONBLOCK)
        if fd is None:
            return
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_nlink != 1:
                raise EnvFileError(
                    f"{self.folder / backup} is not a backup this user made; refusing to restore from it.",
                    path=self.path,
                    fix="Check the file and remove it by hand.",
                )
            old = _read_all(fd)
        finally:
            os.close(fd)
        self._write_in_place(old, keep_backup=False)
        self._unlink(backup)
        self._fsync_folder()

    # -- the commit point --

    def commit(self, text: str, *, rebase: Rebase | None = None) -> None:
        """Replace the file's content with ``text``: the commit point.

        The text must parse. If the file changed since ``read()`` (a writer that does not take our
        lock), ``rebase(current_document)`` gives the text to write instead (it may raise); without
        ``rebase`` the commit is refused. Either way nothing is written over an edit we did not see.
        """
        if self._seen is None:
            raise RuntimeError("EnvTarget.commit() before read()")
        for _attempt in range(3):
            parse(text, self.path)  # never write a file Cypht cannot load
            current = self._current()
            if current == self._seen:
                break
            if rebase is None:
                raise _changed(self.path)
            self._seen = current
            base = parse(_decode(current[1], self.path), self.path)
            text = rebase(base)
        else:
            raise _changed(self.path)
        if self._seen[0] is not None:
            self._check_file_writable(self._seen[0])  # made read-only meanwhile: not ours to rewrite
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            raise EnvFileError("the new text is not valid Unicode.", path=self.path) from None
        self._check_folder_unmoved()
        if self.mount_point:
            self._write_in_place(data, keep_backup=True)
        else:
            self._replace(data)
        self._seen = self._current()

    def _unchanged_or_raise(self) -> None:
        if self._current() != self._seen:
            raise _changed(self.path)

    def _check_folder_unmoved(self) -> None:
        try:
            now = os.stat(self.folder)
        except OSError:
            now = None
        if now is None or (now.st_dev, now.st_ino) != self._folder_facts.identity:
            raise EnvFileError(
                f"its folder {self.folder} was moved or replaced while cypht-azure was working on it.",
                path=self.path,
                fix="Find out who moves Cypht's folder; then run again.",
            )

    def _new_temp(self) -> tuple[int, str | None]:
        """A new empty file in the folder, 0600: anonymous (O_TMPFILE) where the file system has it."""
        if hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd"):
            try:
                return os.open(".", os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o600, dir_fd=self._folder_fd), None
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
                    raise _os_error(exc, self.path, "create a temporary file next to") from None
        name = f"{_temp_prefix(self.name)}{secrets.token_hex(6)}{_TEMP_SUFFIX}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            return os.open(name, flags, 0o600, dir_fd=self._folder_fd), name
        except OSError as exc:
            raise _os_error(exc, self.path, "create a temporary file next to") from None

    def _dress(self, fd: int) -> None:
        """Owner, group, mode and extended attributes (POSIX ACLs among them) of the old file."""
        uid, gid, mode, xattrs = self._owner_and_mode()
        try:
            if (uid, gid) != (os.geteuid(), os.getegid()):
                os.fchown(fd, uid if uid != os.geteuid() else -1, gid)
        except OSError as exc:
            raise EnvFileError(
                f"the new file cannot get the owner and group of the old one (user id {uid}, group id "
                f"{gid}): {os.strerror(exc.errno or 0)}.",
                path=self.path,
                fix=f"Run as root, or as the file's owner and a member of group id {gid}.",
            ) from None
        os.fchmod(fd, mode)
        for attr, value in xattrs.items():
            try:
                os.setxattr(fd, attr, value)
            except OSError as exc:
                raise EnvFileError(
                    f"its extended attribute {attr} ({_xattr_kind(attr)}) cannot be copied to the new file: "
                    f"{os.strerror(exc.errno or 0)}. cypht-azure does not drop it silently.",
                    path=self.path,
                    fix="Run as root or as the file's owner, or remove the attribute if it is not needed "
                        f"(setfattr -x {attr} {self.real}).",
                ) from None

    def _replace(self, data: bytes) -> None:
        fd, name = self._new_temp()
        try:
            try:
                _write_all(fd, data)
                os.fsync(fd)
                self._dress(fd)  # 0600 until the data is on disk; then the old file's owner and mode
                os.fsync(fd)
                if name is None:
                    name = f"{_temp_prefix(self.name)}{secrets.token_hex(6)}{_TEMP_SUFFIX}"
                    os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=self._folder_fd, follow_symlinks=True)
            finally:
                os.close(fd)
            self._unchanged_or_raise()  # same inode, same bytes as read: the last check before the rename
            os.replace(name, self.name, src_dir_fd=self._folder_fd, dst_dir_fd=self._folder_fd)
            name = None
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                raise EnvFileError(
                    "it cannot be replaced (EBUSY): it is probably a bind-mounted file that was not "
                    "recognised as one. The original is unchanged.",
                    path=self.path,
                    fix="Run again; if it persists, mount the folder instead of the single file.",
                ) from None
            raise _os_error(exc, self.path, "write") from None
        finally:
            if name is not None:
                self._unlink(name)
        self._fsync_folder()

    def _write_in_place(self, data: bytes, *, keep_backup: bool) -> None:
        """Rewrite a file that cannot be renamed over, keeping its inode (and so its mount).

        With ``keep_backup`` the old content is first saved beside it, fsynced, and removed only once
        the new content is fsynced and read back. A failure puts the old content back at once; a run
        killed meanwhile leaves the backup for the next run's ``locked()``.
        """
        backup = _backup_name(self.name)
        old = self._seen[1] if self._seen is not None else b""
        if keep_backup:
            bfd = self._open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            if bfd is None:  # pragma: no cover - O_CREAT never gives ENOENT for an existing folder
                raise _os_error(OSError(errno.ENOENT, "folder vanished"), self.path, "back up")
            try:
                _write_all(bfd, old)
                os.fsync(bfd)
            except OSError as exc:
                os.close(bfd)
                self._unlink(backup)
                raise _os_error(exc, self.path, "back up") from None
            os.close(bfd)
            self._fsync_folder()
        fd = self._open(self.name, os.O_RDWR)
        if fd is None:
            raise _changed(self.path)
        try:
            if keep_backup and self._seen is not None:
                seen_facts = self._seen[0]
                if seen_facts is None or FileFacts.of(os.fstat(fd)).identity != seen_facts.identity:
                    raise _changed(self.path)
            try:
                _put(fd, data)
            except OSError as exc:
                if keep_backup:
                    _put(fd, old)
                    self._unlink(backup)
                raise _os_error(exc, self.path, "write") from None
        except BaseException:
            os.close(fd)
            if keep_backup:
                with suppress(OSError, EnvFileError):
                    self._unlink(backup)
            raise
        os.close(fd)
        if keep_backup:
            self._unlink(backup)  # the commit point of an in-place write
            self._fsync_folder()

    def _unlink(self, name: str) -> None:
        with suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self._folder_fd)

    def _fsync_folder(self) -> None:
        try:
            os.fsync(self._folder_fd)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):  # some cannot fsync folders
                raise


def open_target(path: Path | str) -> EnvTarget:
    """Resolve ``path`` once (see ``_resolve``) and open its folder; close with ``close()`` or ``with``."""
    given = Path(path)
    real = _resolve(given)
    try:
        folder_fd = os.open(real.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise _no_folder(given, real.parent) from None
    except OSError as exc:
        raise EnvFileError(
            f"cannot open its folder {real.parent}: {os.strerror(exc.errno or 0)}.",
            path=given,
            fix="Check that the folder exists and is accessible.",
        ) from None
    try:
        return EnvTarget(given, real, folder_fd)
    except BaseException:
        os.close(folder_fd)
        raise


# ------------------------------------------------------------------------------------- path API


def load(path: Path, *, environ: Mapping[str, str] | None = None) -> EnvDocument:
    """Read and parse the .env at ``path``; a missing file gives an empty document."""
    with open_target(path) as target:
        return target.read(environ=environ)


def check_writable(path: Path) -> None:
    """Raise EnvFileError unless the .env at ``path`` can be rewritten keeping what it has."""
    with open_target(path) as target:
        target.preflight()


@contextmanager
def locked(path: Path, timeout: float = 30.0) -> Iterator[None]:
    """Hold the exclusive lock on this .env's folder; concurrent runs wait up to ``timeout`` seconds.

    flock locks belong to the open file description: nesting ``locked()`` on the same file in one
    process waits for itself and fails after ``timeout``.
    """
    with open_target(path) as target, target.locked(timeout):
        yield


@contextmanager
def editing(path: Path, timeout: float = 30.0) -> Iterator[EnvDocument]:
    """Lock, load and check the .env, in that order; yield the document. Write with write_atomic."""
    with open_target(path) as target, target.locked(timeout):
        doc = target.read()
        target.preflight()
        yield doc


def write_atomic(path: Path, text: str) -> None:
    """Replace the .env at ``path`` (through a symlink) with ``text``, atomically and durably."""
    with open_target(path) as target:
        target.read()
        target.commit(text)


# ------------------------------------------------------------------------------------- helpers


def _acquire(fd: int, path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise EnvFileError(
                    f"another cypht-azure run has been editing it for more than {timeout:g} s.",
                    path=path,
                    fix="Wait for the other run to finish, then run again.",
                ) from None
            time.sleep(_LOCK_POLL_SECONDS)
        except OSError as exc:
            raise EnvFileError(
                f"cannot lock its folder: {os.strerror(exc.errno or 0)}.",
                path=path,
                fix="Use a local file system that supports flock for Cypht's install.",
            ) from None


def _mount_id(fd: int, st: os.stat_result) -> tuple[int, int]:
    """(device, mount id): a bind mount of a file from the same file system differs only in the latter."""
    try:
        with open(f"/proc/self/fdinfo/{fd}") as info:
            for line in info:
                if line.startswith("mnt_id:"):
                    return st.st_dev, int(line.split()[1])
    except OSError:
        pass
    return st.st_dev, -1


def _xattrs(fd: int, path: Path) -> dict[str, bytes]:
    try:
        names = os.listxattr(fd)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}
        raise _os_error(exc, path, "read the extended attributes of") from None
    out: dict[str, bytes] = {}
    for attr in names:
        with suppress(OSError):
            out[attr] = os.getxattr(fd, attr)
    return out


def _xattr_kind(attr: str) -> str:
    if attr.startswith("system.posix_acl"):
        return "a POSIX ACL"
    if attr == "security.selinux":
        return "an SELinux label"
    return "an extended attribute"


def _may_use_group(gid: int) -> bool:
    return gid == os.getegid() or gid in os.getgroups()


def _require_regular(st: os.stat_result, path: Path) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise _is_directory(path)
    if not stat.S_ISREG(st.st_mode):
        raise EnvFileError(
            "it is not a regular file (a pipe, socket or device?).",
            path=path,
            fix="Point the tool at Cypht's real .env file.",
        )


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    offset = 0
    while offset <= MAX_ENV_BYTES:
        chunk = os.pread(fd, 65536, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _put(fd: int, data: bytes) -> None:
    """Overwrite the whole content of ``fd`` with ``data``, fsync and read it back."""
    offset = 0
    while offset < len(data):
        offset += os.pwrite(fd, data[offset:], offset)
    os.ftruncate(fd, len(data))
    os.fsync(fd)
    if _read_all(fd) != data:
        raise OSError(errno.EIO, "the new content did not read back")


def _decode(data: bytes, path: Path) -> str:
    if b"\0" in data:
        raise EnvFileError(
            "it contains NUL bytes: this is binary data, not a .env file.",
            path=path,
            line=data.count(b"\n", 0, data.index(b"\0")) + 1,
            fix="Point the tool at Cypht's .env, or restore it from .env.example.",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EnvFileError(
            "it is not valid UTF-8.",
            path=path,
            line=data.count(b"\n", 0, exc.start) + 1,
            fix="Re-save the file as UTF-8.",
        ) from None


def _changed(path: Path) -> EnvFileError:
    return EnvFileError(
        "it was changed by another program while cypht-azure was working on it (not through "
        "cypht-azure's lock); it was not overwritten.",
        path=path,
        fix="Run again once nothing else is editing the file.",
    )


def _too_large(path: Path) -> EnvFileError:
    return EnvFileError(
        f"it is larger than {MAX_ENV_BYTES // 1024} KiB; a Cypht .env is a few KiB.",
        path=path,
        fix="Check that this is Cypht's .env file.",
    )


def _is_directory(path: Path) -> EnvFileError:
    return EnvFileError(
        "it is a directory, not a file.",
        path=path,
        fix="Pass the path of the .env file itself (e.g. /var/www/cypht/.env), or remove the directory.",
    )


def _no_folder(path: Path, folder: Path) -> EnvFileError:
    return EnvFileError(
        f"its folder {folder} does not exist.",
        path=path,
        fix="Check the path of Cypht's install, or create the folder.",
    )


def _dangling(path: Path, real: Path) -> EnvFileError:
    return EnvFileError(
        f"it is a symbolic link to {real}, which does not exist (or is a link loop).",
        path=path,
        fix="Create the target file (it may be empty), or point the link at the real .env.",
    )


def _os_error(exc: OSError, path: Path, doing: str) -> EnvFileError:
    fixes = {
        errno.ENOSPC: "Free some disk space and run again; the original file is unchanged.",
        errno.EDQUOT: "Raise the disk quota and run again; the original file is unchanged.",
        errno.EACCES: "Run as the file's owner (or root), or fix the permissions.",
        errno.EPERM: "Run as the file's owner (or root), or fix the permissions.",
        errno.EROFS: "The file system is read-only; remount it read-write or edit the file elsewhere.",
    }
    return EnvFileError(
        f"could not {doing} it: {os.strerror(exc.errno) if exc.errno else type(exc).__name__}.",
        path=path,
        fix=fixes.get(exc.errno or 0, "Check the path and its permissions."),
    )
