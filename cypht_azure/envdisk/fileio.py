"""File-descriptor level work: reading and writing whole files, facts, extended attributes, mounts, flock."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import sys
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from cypht_azure.envdisk.problems import is_directory, lock_timeout, os_error
from cypht_azure.envfile import MAX_ENV_BYTES, EnvFileError

LOCK_POLL_SECONDS = 0.05
TEMP_SUFFIX = ".tmp"


def temp_prefix(name: str) -> str:
    return f".{name}.cypht-azure-"


def backup_name(name: str) -> str:
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


def acquire(fd: int, path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise lock_timeout(path, timeout) from None
            time.sleep(LOCK_POLL_SECONDS)
        except OSError as exc:
            raise EnvFileError(
                f"cannot lock its folder: {os.strerror(exc.errno or 0)}.",
                path=path,
                fix="Use a local file system that supports flock for Cypht's install.",
            ) from None


def mount_id(fd: int, st: os.stat_result) -> tuple[int, int]:
    """(device, mount id): a bind mount of a file from the same file system differs only in the latter."""
    try:
        with open(f"/proc/self/fdinfo/{fd}") as info:
            for line in info:
                if line.startswith("mnt_id:"):
                    return st.st_dev, int(line.split()[1])
    except OSError:
        pass
    return st.st_dev, -1


def xattrs_of(fd: int, path: Path) -> dict[str, bytes]:
    try:
        names = os.listxattr(fd)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}
        raise os_error(exc, path, "read the extended attributes of") from None
    out: dict[str, bytes] = {}
    for attr in names:
        with suppress(OSError):
            out[attr] = os.getxattr(fd, attr)
    return out


def xattr_kind(attr: str) -> str:
    if attr.startswith("system.posix_acl"):
        return "a POSIX ACL"
    if attr == "security.selinux":
        return "an SELinux label"
    return "an extended attribute"


FS_IOC_GETFLAGS = 0x80086601  # _IOR('f', 1, long): the inode flags lsattr shows
FS_IMMUTABLE_FL = 0x10        # chattr +i: no change at all, not even by root
FS_APPEND_FL = 0x20           # chattr +a: may only grow (a folder: entries added, never renamed or removed)


def inode_flags(fd: int) -> int:
    """The file's inode flags (chattr), or 0 where the file system has none."""
    try:
        raw = fcntl.ioctl(fd, FS_IOC_GETFLAGS, b"\0" * 4)
    except OSError:  # ENOTTY, EINVAL, EOPNOTSUPP: no such flags here
        return 0
    return int.from_bytes(raw, sys.byteorder, signed=True)


def may_use_group(gid: int) -> bool:
    return gid == os.getegid() or gid in os.getgroups()


def require_regular(st: os.stat_result, path: Path) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise is_directory(path)
    if not stat.S_ISREG(st.st_mode):
        raise EnvFileError(
            "it is not a regular file (a pipe, socket or device?).",
            path=path,
            fix="Point the tool at Cypht's real .env file.",
        )


def read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    offset = 0
    while offset <= MAX_ENV_BYTES:
        chunk = os.pread(fd, 65536, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def put(fd: int, data: bytes) -> None:
    """Overwrite the whole content of ``fd`` with ``data``, fsync and read it back."""
    offset = 0
    while offset < len(data):
        offset += os.pwrite(fd, data[offset:], offset)
    os.ftruncate(fd, len(data))
    os.fsync(fd)
    if read_all(fd) != data:
        raise OSError(errno.EIO, "the new content did not read back")


def decode(data: bytes, path: Path) -> str:
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
