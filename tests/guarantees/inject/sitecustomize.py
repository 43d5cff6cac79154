"""TEST-ONLY: make writes to cypht-azure's temporary .env file fail, as a full or broken disk would.

Put this folder first on PYTHONPATH and set CYPHT_AZURE_TEST_FAIL_WRITE to ENOSPC-on-write (os.write
fails with ENOSPC) or EIO-on-fsync (os.fsync fails with EIO). Only file descriptors whose path is a
`.<name>.cypht-azure-<hex>.tmp` file are affected; every other write goes through unchanged. Never
installed with the package: it lives under tests/ and acts only when that variable is set.
"""

from __future__ import annotations

import errno
import os
import re

_MODE = os.environ.get("CYPHT_AZURE_TEST_FAIL_WRITE", "")
_TEMP = re.compile(r"/\.[^/]+\.cypht-azure-[0-9a-f]+\.tmp$")


def _is_temp(fd: int) -> bool:
    try:
        return bool(_TEMP.search(os.readlink(f"/proc/self/fd/{fd}")))
    except OSError:
        return False


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
