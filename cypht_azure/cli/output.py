"""The one way the CLI writes to stdout and stderr: output can never change what a run does.

A reader that went away (`| head -1`, a quit `less`, a dropped SSH session: EPIPE), a full or failing
disk (`> /dev/full`: ENOSPC, EIO) or a descriptor closed before the start (`2>&-`: EBADF) stops the
writing to that stream, once, silently: the stream is remembered as lost and its descriptor is pointed
at /dev/null, so neither a later write nor the interpreter's flush at exit can raise. The run goes on
and ends with the exit code of what it did. SIGPIPE stays ignored (Python's default), so a closed pipe
is EPIPE here, never a kill in the middle of a step.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import TextIO


class Stream:
    """stdout (fd 1) or stderr (fd 2), written whole lines at a time; stops for good at the first error."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.lost: str | None = None  # why writing stopped: the errno's name (EPIPE, ENOSPC, EIO, EBADF)

    @property
    def file(self) -> TextIO | None:
        return sys.stdout if self.fd == 1 else sys.stderr

    def isatty(self) -> bool:
        stream = self.file
        if self.lost or stream is None:
            return False
        try:
            return stream.isatty()
        except (OSError, ValueError):
            return False

    def write(self, text: str) -> None:
        """Write and flush ``text``; after the first failure, nothing (the run is not disturbed)."""
        if self.lost:
            return
        stream = self.file
        try:
            if stream is None:
                raise OSError(errno.EBADF, os.strerror(errno.EBADF))
            stream.write(text)
            stream.flush()
        except (OSError, ValueError) as exc:
            self.give_up(getattr(exc, "errno", None) or errno.EBADF)

    def line(self, text: str = "") -> None:
        self.write(text + "\n")

    def give_up(self, code: int) -> None:
        self.lost = errno.errorcode.get(code, str(code))
        _to_devnull(self.fd)


def _to_devnull(fd: int) -> None:
    """Point ``fd`` at /dev/null: what the stream still buffers then goes nowhere, without an error."""
    try:
        null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.dup2(null, fd, inheritable=fd <= 2)
    except OSError:
        pass
    finally:
        os.close(null)


STDOUT = Stream(1)
STDERR = Stream(2)


def guard_descriptors() -> None:
    """At start-up: a closed stdin, stdout or stderr (`2>&-`) is reopened on /dev/null.

    Otherwise the next file the run opens (the `.env`'s folder, the audit log) would get that number,
    and text meant for the terminal would be written into it. A closed stdout or stderr counts as lost.
    """
    for fd, stream in ((0, None), (1, STDOUT), (2, STDERR)):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        try:
            null = os.open(os.devnull, os.O_RDWR)
        except OSError:
            continue
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        if stream is None:
            if sys.stdin is None:
                sys.stdin = open(fd, closefd=False)  # noqa: SIM115 - lives as long as the process
        else:
            stream.lost = "EBADF"
            if stream.file is None:
                replacement = open(fd, "w", closefd=False, errors="backslashreplace")  # noqa: SIM115
                if fd == 1:
                    sys.stdout = replacement
                else:
                    sys.stderr = replacement
