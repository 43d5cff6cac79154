"""TEST-ONLY: the disturbances of tests/guarantees/inject/sitecustomize.py, plus one for the fault loop.

CYPHT_AZURE_TEST_FAIL_DIR_FSYNC=1: os.fsync of a folder's file descriptor fails with EIO: the fsync
of `.env`'s folder right after the rename (a failing disk, an NFS server gone away). Every other fsync
goes through. Put this folder first on PYTHONPATH; it loads the other one as well.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

_BASE = Path(__file__).resolve().parents[1] / "inject" / "sitecustomize.py"
exec(compile(_BASE.read_text(), str(_BASE), "exec"))  # the shared injections (CYPHT_AZURE_TEST_FAIL_WRITE, ...)

if os.environ.get("CYPHT_AZURE_TEST_FAIL_DIR_FSYNC") == "1":
    _dir_fsync = os.fsync

    def _failing_dir_fsync(fd: int) -> None:  # type: ignore[no-untyped-def]
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        _dir_fsync(fd)

    os.fsync = _failing_dir_fsync

if os.environ.get("CYPHT_AZURE_TEST_ACT_ON_FSYNC") == "1":
    # The temporary file's fsync (the secret is in it, the rename not done): write the pause file, wait
    # for the resume file (the test sends its signal meanwhile), then go on.
    _fsync_then_act = os.fsync

    def _acting_fsync(fd: int) -> None:  # type: ignore[no-untyped-def]
        if _is_temp(fd):  # noqa: F821 - defined by the shared injections above
            import time

            with open(os.environ["CYPHT_AZURE_TEST_PAUSE_FILE"], "w") as marker:
                marker.write("fsync")
            deadline = time.monotonic() + 60
            while not os.path.exists(os.environ["CYPHT_AZURE_TEST_RESUME_FILE"]) and time.monotonic() < deadline:
                time.sleep(0.02)
        _fsync_then_act(fd)

    os.fsync = _acting_fsync
