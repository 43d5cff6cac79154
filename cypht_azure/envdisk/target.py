"""EnvTarget: one `.env`, resolved once, read, checked, locked and committed through its folder."""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import stat
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

from cypht_azure.envdisk.fileio import (
    FS_APPEND_FL,
    FS_IMMUTABLE_FL,
    TEMP_SUFFIX,
    FileFacts,
    acquire,
    backup_name,
    decode,
    inode_flags,
    may_use_group,
    mount_id,
    put,
    read_all,
    require_regular,
    temp_prefix,
    write_all,
    xattr_kind,
    xattrs_of,
)
from cypht_azure.envdisk.problems import (
    WRITE_FIXES,
    another_owner,
    changed,
    flagged,
    is_directory,
    os_error,
    read_only_file_system,
    reason,
    too_large,
    user_name,
)
from cypht_azure.envfile import MAX_ENV_BYTES, EnvDocument, EnvFileError, parse

NEW_FILE_MODE = 0o640
"""A new .env: owner read-write, the folder's group (the web server) read, nobody else."""

Rebase = Callable[[EnvDocument], str]
Committed = Callable[[], None]


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
        self.flags = 0  # the file's inode flags (chattr)
        self.read_only_mount = False  # the file's own mount (a bind-mounted file) is read-only
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
            raise is_directory(self.path) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise EnvFileError(
                    f"{self.folder / name} became a symbolic link while cypht-azure was working on it.",
                    path=self.path,
                    fix="Find out who changes the file's folder; then run again.",
                ) from None
            raise os_error(exc, self.path, "open") from None

    def _inspect(self) -> None:
        """Facts about the file as it is now: type, owner, mode, mount point, extended attributes."""
        fd = self._open(self.name, os.O_RDONLY | os.O_NONBLOCK)
        if fd is None:
            self.facts, self.mount_point, self.xattrs, self.flags, self.read_only_mount = None, False, {}, 0, False
            return
        try:
            st = os.fstat(fd)
            require_regular(st, self.path)
            self.facts = FileFacts.of(st)
            self.mount_point = mount_id(fd, st) != mount_id(self._folder_fd, os.fstat(self._folder_fd))
            self.xattrs = xattrs_of(fd, self.path)
            self.flags = inode_flags(fd)
            self.read_only_mount = bool(os.fstatvfs(fd).f_flag & os.ST_RDONLY)
        finally:
            os.close(fd)

    def _current(self) -> tuple[FileFacts | None, bytes]:
        fd = self._open(self.name, os.O_RDONLY | os.O_NONBLOCK)
        if fd is None:
            return None, b""
        try:
            st = os.fstat(fd)
            require_regular(st, self.path)
            if st.st_size > MAX_ENV_BYTES:
                raise too_large(self.path)
            data = read_all(fd)
            return FileFacts.of(os.fstat(fd)), data
        except OSError as exc:
            raise os_error(exc, self.path, "read") from None
        finally:
            os.close(fd)

    def read(self, *, environ: Mapping[str, str] | None = None) -> EnvDocument:
        """Read and parse the file (a missing one is an empty document), remembering what was read."""
        facts, data = self._current()
        if len(data) > MAX_ENV_BYTES:
            raise too_large(self.path)
        self._seen = (facts, data)
        self.document = parse(decode(data, self.path), self.path, environ=environ)
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
        folder_read_only = bool(os.fstatvfs(self._folder_fd).f_flag & os.ST_RDONLY)
        if folder_read_only or self.read_only_mount:
            raise read_only_file_system(self.path, self.folder if folder_read_only else None)
        self._check_flags()
        if not os.access(".", os.W_OK | os.X_OK, dir_fd=self._folder_fd):
            raise EnvFileError(
                f"its folder {self.folder} is not writable: the file is replaced through a temporary file "
                "next to it (or, for a bind-mounted file, backed up next to it while it is rewritten).",
                path=self.path,
                fix=f"Run as the folder's owner, {user_name(self._folder_facts.uid)} (or root), or grant write "
                    f"access: chmod u+w {self.folder}",
            )
        facts = self.facts
        if facts is not None:
            self._check_file_writable(facts)
        self._probe()

    def _check_flags(self) -> None:
        """chattr +i or +a on the file or its folder: root cannot replace or rewrite it either."""
        for flags, folder in ((self.flags, None), (inode_flags(self._folder_fd), self.folder)):
            if flags & (FS_IMMUTABLE_FL | FS_APPEND_FL):
                raise flagged(self.path, self.real, folder, immutable=bool(flags & FS_IMMUTABLE_FL))

    def _check_file_writable(self, facts: FileFacts) -> None:
        euid = os.geteuid()
        if euid != 0 and facts.uid != euid and facts.mode & 0o200:
            raise another_owner(self.path, facts.uid, facts.mode, euid)
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
        if euid != 0 and not self.mount_point and not may_use_group(facts.gid):
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
        if not may_use_group(folder.gid):
            raise EnvFileError(
                f"a new .env gets its folder's group (group id {folder.gid}, so that the web server can read "
                "it with mode 0640), and this user is not a member of that group.",
                path=self.path,
                fix=f"Run as root, or create the file first with the right group: "
                    f"install -m 0640 -g {folder.gid} /dev/null {self.real}",
            )
        return os.geteuid(), folder.gid, NEW_FILE_MODE, {}

    def _probe(self) -> None:
        """Make what the commit makes, minus the final rename: the temporary file (O_TMPFILE linked to a
        name, or a named one), dressed as the real file and renamed once; for a bind-mounted file, the
        backup's named file. Then remove it."""
        fd, name = self._new_temp(named=self.mount_point)
        try:
            if not self.mount_point:
                self._dress(fd)
                if name is None:
                    name = self._link_temp(fd)
                moved = f"{temp_prefix(self.name)}{secrets.token_hex(6)}{TEMP_SUFFIX}"
                try:
                    os.rename(name, moved, src_dir_fd=self._folder_fd, dst_dir_fd=self._folder_fd)
                except OSError as exc:
                    raise os_error(exc, self.path, "rename a temporary file next to") from None
                name = moved
        finally:
            os.close(fd)
            if name is not None:
                self._unlink(name)

    def _link_temp(self, fd: int) -> str:
        """Give an anonymous (O_TMPFILE) file a name in the folder, for the rename."""
        name = f"{temp_prefix(self.name)}{secrets.token_hex(6)}{TEMP_SUFFIX}"
        try:
            os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=self._folder_fd, follow_symlinks=True)
        except OSError as exc:
            raise os_error(exc, self.path, "name a temporary file next to") from None
        return name

    # -- the lock --

    @contextmanager
    def locked(self, timeout: float = 30.0) -> Iterator[None]:
        """Exclusive flock on the folder; concurrent runs wait up to ``timeout`` seconds.

        The lock is on the folder because the file is replaced by rename (its inode changes) and a
        sidecar lock file would be left behind. Once held, what an interrupted run left is repaired:
        a bind-mounted file is put back from its backup, stale temporary files are removed.
        """
        acquire(self._folder_fd, self.path, timeout)
        self._locked = True
        try:
            self._recover()
            yield
        finally:
            self._locked = False
            with suppress(OSError):
                fcntl.flock(self._folder_fd, fcntl.LOCK_UN)

    def _recover(self) -> None:
        prefix = temp_prefix(self.name)
        for entry in os.scandir(self._folder_fd):
            if entry.name.startswith(prefix) and entry.name.endswith(TEMP_SUFFIX):
                with suppress(OSError):
                    if entry.is_file(follow_symlinks=False):
                        self._unlink(entry.name)  # left by a killed run; may hold a secret
        backup = backup_name(self.name)
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
            old = read_all(fd)
        finally:
            os.close(fd)
        try:
            self._write_in_place(old, keep_backup=False)
            self._unlink(backup)
            self._fsync_folder()
        except (OSError, EnvFileError) as exc:
            raise EnvFileError(
                f"an earlier run was stopped while rewriting it in place, and its previous content could not be "
                f"put back from {self.folder / backup} ({reason(exc)}). The backup stays.",
                path=self.path,
                fix="Check the disk (dmesg), then run again; or copy the backup over the file by hand.",
            ) from None

    # -- the commit point --

    def commit(self, text: str, *, rebase: Rebase | None = None, on_committed: Committed | None = None) -> list[str]:
        """Replace the file's content with ``text``: the commit point.

        The text must parse. If the file changed since ``read()`` (a writer that does not take our
        lock), ``rebase(current_document)`` gives the text to write instead (it may raise); without
        ``rebase`` the commit is refused. Either way nothing is written over an edit we did not see.

        ``on_committed()`` is called the instant the file holds the new text (the rename returned, or
        the in-place write was synced and read back), before anything else. What fails after that
        instant (syncing the folder, removing the backup, reading the result) is not raised: it is
        returned as warnings, since the file already holds the new text.
        """
        if self._seen is None:
            raise RuntimeError("EnvTarget.commit() before read()")
        for _attempt in range(3):
            parse(text, self.path)  # never write a file Cypht cannot load
            current = self._current()
            if current == self._seen:
                break
            if rebase is None:
                raise changed(self.path)
            self._seen = current
            base = parse(decode(current[1], self.path), self.path)
            text = rebase(base)
        else:
            raise changed(self.path)
        if self._seen[0] is not None:
            self._check_file_writable(self._seen[0])  # made read-only meanwhile: not ours to rewrite
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            raise EnvFileError("the new text is not valid Unicode.", path=self.path) from None
        self._check_folder_unmoved()
        warnings: list[str] = []
        if self.mount_point:
            self._write_in_place(data, keep_backup=True, on_committed=on_committed, warnings=warnings)
        else:
            self._replace(data, on_committed=on_committed, warnings=warnings)
        try:
            self._seen = self._current()
        except (OSError, EnvFileError) as exc:
            self._seen = None
            warnings.append(f"it could not be read again after the write ({reason(exc)}).")
        return warnings

    def _unchanged_or_raise(self) -> None:
        if self._current() != self._seen:
            raise changed(self.path)

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

    def _new_temp(self, *, named: bool = False) -> tuple[int, str | None]:
        """A new empty file in the folder, 0600: anonymous (O_TMPFILE) where the file system has it."""
        if not named and hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd"):
            try:
                return os.open(".", os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o600, dir_fd=self._folder_fd), None
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
                    raise os_error(exc, self.path, "create a temporary file next to") from None
        name = f"{temp_prefix(self.name)}{secrets.token_hex(6)}{TEMP_SUFFIX}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            return os.open(name, flags, 0o600, dir_fd=self._folder_fd), name
        except OSError as exc:
            raise os_error(exc, self.path, "create a temporary file next to") from None

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
                    f"its extended attribute {attr} ({xattr_kind(attr)}) cannot be copied to the new file: "
                    f"{os.strerror(exc.errno or 0)}. cypht-azure does not drop it silently.",
                    path=self.path,
                    fix="Run as root or as the file's owner, or remove the attribute if it is not needed "
                        f"(setfattr -x {attr} {self.real}).",
                ) from None

    def _replace(self, data: bytes, *, on_committed: Committed | None = None,
                 warnings: list[str] | None = None) -> None:
        fd, name = self._new_temp()
        try:
            try:
                write_all(fd, data)
                os.fsync(fd)
                self._dress(fd)  # 0600 until the data is on disk; then the old file's owner and mode
                os.fsync(fd)
                if name is None:
                    name = self._link_temp(fd)
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
            raise os_error(exc, self.path, "write") from None
        finally:
            if name is not None:
                self._unlink(name)
        if on_committed is not None:
            on_committed()  # the file holds the new text: from here on nothing may raise
        self._sync_after_commit(warnings)

    def _sync_after_commit(self, warnings: list[str] | None) -> None:
        try:
            self._fsync_folder()
        except OSError as exc:
            if warnings is None:
                raise os_error(exc, self.path, "sync the folder of") from None
            warnings.append(f"its folder could not be flushed to disk after the write ({reason(exc)}): a crash "
                            "before the disk recovers could bring back its previous content.")

    def _write_in_place(self, data: bytes, *, keep_backup: bool, on_committed: Committed | None = None,
                        warnings: list[str] | None = None) -> None:
        """Rewrite a file that cannot be renamed over, keeping its inode (and so its mount).

        With ``keep_backup`` the old content is first saved beside it and synced; the backup is removed
        only once the new content is written, synced and read back. A failed write puts the old content
        back; if that fails too, the backup stays (the next run's ``locked()`` puts it back) and the error
        says what the file holds now. A run killed meanwhile leaves the backup likewise.
        """
        backup = backup_name(self.name)
        old = self._seen[1] if self._seen is not None else b""
        if keep_backup:
            self._save_backup(backup, old)
        fd = self._open(self.name, os.O_RDWR)
        if fd is None:
            if keep_backup:
                self._drop(backup)
            raise changed(self.path)
        try:
            if keep_backup and self._seen is not None:
                seen_facts = self._seen[0]
                if seen_facts is None or FileFacts.of(os.fstat(fd)).identity != seen_facts.identity:
                    self._drop(backup)
                    raise changed(self.path)
            try:
                put(fd, data)
            except OSError as exc:
                if not keep_backup:
                    raise os_error(exc, self.path, "write") from None
                self._after_failed_write(fd, exc, data, old, backup, warnings)
                if on_committed is not None:
                    on_committed()  # it holds the new text after all; the backup stays (see the warning)
                return
        finally:
            os.close(fd)
        if on_committed is not None:
            on_committed()  # written, synced and read back: the commit point of an in-place write
        if keep_backup:
            try:
                self._unlink(backup)
            except OSError as exc:
                if warnings is None:
                    raise os_error(exc, self.path, "remove the backup of") from None
                warnings.append(f"its backup {self.folder / backup} (the previous content) could not be removed "
                                f"({reason(exc)}): the next run puts that content back.")
                return
            self._sync_after_commit(warnings)

    def _save_backup(self, backup: str, old: bytes) -> None:
        bfd = self._open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        if bfd is None:  # pragma: no cover - O_CREAT never gives ENOENT for an existing folder
            raise os_error(OSError(errno.ENOENT, "folder vanished"), self.path, "back up")
        try:
            write_all(bfd, old)
            os.fsync(bfd)
        except OSError as exc:
            os.close(bfd)
            self._drop(backup)
            raise os_error(exc, self.path, "back up") from None
        os.close(bfd)
        try:
            self._fsync_folder()
        except OSError as exc:
            self._drop(backup)
            raise os_error(exc, self.path, "back up") from None

    def _after_failed_write(self, fd: int, exc: OSError, data: bytes, old: bytes, backup: str,
                            warnings: list[str] | None) -> None:
        """After ``put(data)`` failed: put the old content back. Raises EnvFileError saying what the file
        holds now, or returns when it holds the complete new text (a warning says why the backup stays);
        the backup is removed only once the old content is back."""
        cause = reason(exc)
        try:
            put(fd, old)
        except OSError:
            pass
        else:
            self._drop(backup)
            raise EnvFileError(
                f"could not write it ({cause}); its previous content was put back, so it is unchanged.",
                path=self.path,
                fix=WRITE_FIXES.get(exc.errno or 0, "Check the disk (dmesg), then run again."),
            )
        try:
            now: bytes | None = read_all(fd)
        except OSError:
            now = None
        kept = f"its previous content is kept in {self.folder / backup}, and the next run puts it back first"
        if now == data and warnings is not None:
            warnings.append(f"the new content is in place but could not be synced to disk ({cause}), nor the "
                            f"previous content put back; {kept}.")
            return
        holds = ("its previous content" if now == old else
                 "a part of the new text (Cypht may not be able to read it until then)")
        raise EnvFileError(
            f"could not write it ({cause}), and putting its previous content back failed too. It holds {holds}; "
            f"{kept}.",
            path=self.path,
            fix="Check the disk (dmesg), then run the command again: it repairs the file before anything else.",
        )

    def _drop(self, name: str) -> None:
        """Remove a file of ours that is no longer needed; a failure leaves it for the next run."""
        with suppress(OSError):
            self._unlink(name)

    def _unlink(self, name: str) -> None:
        with suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self._folder_fd)

    def _fsync_folder(self) -> None:
        try:
            os.fsync(self._folder_fd)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):  # some cannot fsync folders
                raise

