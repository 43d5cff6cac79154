"""TEST-ONLY: disturb cypht-azure's .env write the way a disk, a kill or another program would.

Put this folder first on PYTHONPATH and set:

- CYPHT_AZURE_TEST_FAIL_WRITE to ENOSPC-on-write (os.write fails with ENOSPC), EIO-on-fsync (os.fsync
  fails with EIO) or PAUSE-on-fsync (the fsync writes CYPHT_AZURE_TEST_PAUSE_FILE and waits to be
  killed, the secret already written into the temporary file). Only file descriptors of the tool's
  temporary file are affected: a `.<name>.cypht-azure-<hex>.tmp` file or an anonymous O_TMPFILE one
  (or, with CYPHT_AZURE_TEST_PAUSE_PATH, that one file: a bind-mounted .env written in place);
  every other write goes through unchanged.
  More modes, each failing only the calls named (and, with CYPHT_AZURE_TEST_FAIL_AFTER=N, only after the
  first N such calls went through; with CYPHT_AZURE_TEST_FAIL_TIMES=N, only N times):
  EIO-on-folder-fsync (os.fsync of the folder CYPHT_AZURE_TEST_FAIL_PATH names fails with EIO: the
  sync after the rename, or around an in-place write), EIO-on-file-fsync (os.fsync of the file
  CYPHT_AZURE_TEST_FAIL_PATH names: a bind-mounted .env written in place), EIO-on-file-pwrite
  (os.pwrite to that file) and EOPNOTSUPP-on-link (os.link of an O_TMPFILE file from /proc/self/fd
  fails, as on a file system that refuses to name an anonymous file).
- CYPHT_AZURE_TEST_NO_TMPFILE=1: opening with O_TMPFILE fails with EOPNOTSUPP, as on file systems
  without it.
- CYPHT_AZURE_TEST_ACT_AT=<checkpoint step>: at that step the process writes
  CYPHT_AZURE_TEST_PAUSE_FILE, waits until CYPHT_AZURE_TEST_RESUME_FILE exists (the test acts
  meanwhile: re-points a symlink, edits `.env`) and then goes on.

Never installed with the package: it lives under tests/ and acts only when those variables are set.
"""

from __future__ import annotations

import errno
import os
import re

_MODE = os.environ.get("CYPHT_AZURE_TEST_FAIL_WRITE", "")
_TEMP = re.compile(r"/\.[^/]+\.cypht-azure-[0-9a-f]+\.tmp$|/#\d+ \(deleted\)$")


def _is_temp(fd: int) -> bool:
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return False
    if os.environ.get("CYPHT_AZURE_TEST_PAUSE_PATH"):
        return target == os.environ["CYPHT_AZURE_TEST_PAUSE_PATH"]
    return bool(_TEMP.search(target))


if _MODE == "ENOSPC-on-write":
    _write = os.write

    def _failing_write(fd: int, data: bytes) -> int:  # type: ignore[no-untyped-def]
        if _is_temp(fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return _write(fd, data)

    os.write = _failing_write
elif _MODE == "EIO-on-fsync":
    _fsync = os.fsync

    def _failing_fsync(fd: int) -> None:  # type: ignore[no-untyped-def]
        if _is_temp(fd):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        _fsync(fd)

    os.fsync = _failing_fsync
elif _MODE in ("EIO-on-folder-fsync", "EIO-on-file-fsync", "EIO-on-file-pwrite", "EOPNOTSUPP-on-link"):
    _AFTER = int(os.environ.get("CYPHT_AZURE_TEST_FAIL_AFTER") or 0)
    _TIMES = int(os.environ.get("CYPHT_AZURE_TEST_FAIL_TIMES") or 0) or None
    _PATH = os.environ.get("CYPHT_AZURE_TEST_FAIL_PATH", "")
    _calls = [0]

    def _due() -> bool:
        _calls[0] += 1
        n = _calls[0] - _AFTER
        return n >= 1 and (_TIMES is None or n <= _TIMES)

    def _names_path(fd: int) -> bool:
        try:
            return os.readlink(f"/proc/self/fd/{fd}") == _PATH
        except OSError:
            return False

    if _MODE == "EOPNOTSUPP-on-link":
        _link = os.link

        def _refusing_link(src, dst, *, src_dir_fd=None, dst_dir_fd=None, follow_symlinks=True):  # type: ignore[no-untyped-def]
            if str(src).startswith("/proc/self/fd/") and _due():
                raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
            return _link(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd, follow_symlinks=follow_symlinks)

        os.link = _refusing_link
    elif _MODE == "EIO-on-file-pwrite":
        _pwrite = os.pwrite

        def _failing_pwrite(fd: int, data: bytes, offset: int) -> int:  # type: ignore[no-untyped-def]
            if _names_path(fd) and _due():
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            return _pwrite(fd, data, offset)

        os.pwrite = _failing_pwrite
    else:
        _fsync_some = os.fsync

        def _failing_some_fsync(fd: int) -> None:  # type: ignore[no-untyped-def]
            if _names_path(fd) and _due():
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            _fsync_some(fd)

        os.fsync = _failing_some_fsync
elif _MODE == "PAUSE-on-fsync":
    _fsync_then_pause = os.fsync

    def _pausing_fsync(fd: int) -> None:  # type: ignore[no-untyped-def]
        if _is_temp(fd):
            _wait_to_be_killed()
        _fsync_then_pause(fd)

    os.fsync = _pausing_fsync


def _wait_to_be_killed() -> None:
    import time

    with open(os.environ["CYPHT_AZURE_TEST_PAUSE_FILE"], "w") as marker:
        marker.write("paused")
    while True:
        time.sleep(3600)


if os.environ.get("CYPHT_AZURE_TEST_NO_TMPFILE") == "1" and hasattr(os, "O_TMPFILE"):
    _open = os.open
    _O_TMPFILE = os.O_TMPFILE

    def _open_without_tmpfile(path, flags, mode=0o777, *, dir_fd=None):  # type: ignore[no-untyped-def]
        if flags & _O_TMPFILE == _O_TMPFILE:
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
        return _open(path, flags, mode, dir_fd=dir_fd)

    os.open = _open_without_tmpfile

if os.environ.get("CYPHT_AZURE_TEST_ACT_AT"):
    import importlib.abc
    import importlib.machinery
    import sys
    import time

    _STEP = os.environ["CYPHT_AZURE_TEST_ACT_AT"]
    _CHECKPOINTS = "cypht_azure.checkpoints"

    def _act_here() -> None:
        with open(os.environ["CYPHT_AZURE_TEST_PAUSE_FILE"], "w") as marker:
            marker.write(_STEP)
        resume = os.environ["CYPHT_AZURE_TEST_RESUME_FILE"]
        deadline = time.monotonic() + 60
        while not os.path.exists(resume) and time.monotonic() < deadline:
            time.sleep(0.02)

    class _WrapCheckpoint(importlib.abc.MetaPathFinder):
        """Wraps checkpoints.checkpoint as the module loads, before any module imports the name."""

        def find_spec(self, name, path, target=None):  # type: ignore[no-untyped-def]
            if name != _CHECKPOINTS:
                return None
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is None or spec.loader is None:
                return spec
            run_module = spec.loader.exec_module

            def exec_module(module):  # type: ignore[no-untyped-def]
                run_module(module)
                original = module.checkpoint

                def checkpoint(step: str) -> None:
                    if step == _STEP:
                        _act_here()
                    original(step)

                module.checkpoint = checkpoint

            spec.loader.exec_module = exec_module  # type: ignore[method-assign]
            return spec

    sys.meta_path.insert(0, _WrapCheckpoint())
