"""A client secret in memory: it never prints itself, so a stray log line or traceback cannot leak it."""

from __future__ import annotations

import contextlib

# Every secret this process has held, for the leak checks that must know them all (the audit line): the
# one .env held before a rotation is gone from .env by the time the run is logged.
_HELD: list[Secret] = []


def held_secrets() -> tuple[Secret, ...]:
    return tuple(_HELD)


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        if value:
            _HELD.append(self)

    def reveal(self) -> str:
        """The value, for the two places that need it: the `.env` write and the token endpoint."""
        return self._value

    def __repr__(self) -> str:
        return "Secret(<hidden>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> str | tuple[object, ...]:  # refuse to be pickled into a file or another process
        raise TypeError("a Secret cannot be pickled")


def no_core_dumps() -> None:
    """Keep this process's memory (the admin's credential, the new secret) out of core files and away
    from other processes of the same user: RLIMIT_CORE 0 and, on Linux, PR_SET_DUMPABLE 0 (which also
    makes /proc/PID/mem, environ and ptrace root's only). Best effort: never stops a command."""
    import resource
    import sys

    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_dumpable = 4
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_dumpable, 0, 0, 0, 0)
