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

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from cypht_azure.envdisk.paths import resolve
from cypht_azure.envdisk.problems import LockTimeout, no_folder
from cypht_azure.envdisk.target import NEW_FILE_MODE, EnvTarget, Rebase
from cypht_azure.envfile import EnvDocument, EnvFileError

__all__ = [
    "NEW_FILE_MODE",
    "EnvTarget",
    "LockTimeout",
    "Rebase",
    "check_writable",
    "editing",
    "load",
    "locked",
    "open_target",
    "write_atomic",
]


def open_target(path: Path | str) -> EnvTarget:
    """Resolve ``path`` once (see ``resolve``) and open its folder; close with ``close()`` or ``with``."""
    given = Path(path)
    real = resolve(given)
    try:
        folder_fd = os.open(real.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise no_folder(given, real.parent) from None
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
