"""SIGINT, SIGTERM and SIGHUP: one meaning (stop, undo what is not committed), three exit codes.

SIGTERM (what `systemctl stop`, `docker stop` and `timeout` send) and SIGHUP (a closed terminal or
SSH session) act exactly like Ctrl-C: in asyncio code the command's task is cancelled at its next
`await` (asyncio.Runner's own SIGINT handling), elsewhere KeyboardInterrupt is raised. The run then
undoes what it created before its commit point, or, after it, stops starting anything new and says
what it left. The exit code names the signal: 130 (SIGINT), 143 (SIGTERM), 129 (SIGHUP), as
shells report them.

`deferred()` holds every one of these signals while a block runs that must not be cut in half (the
`.env` write and the record of its commit point) and delivers them when the block is done.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_received: list[int] = []


def install() -> None:
    """SIGTERM and SIGHUP act as Ctrl-C does from here on."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _as_ctrl_c)


def _as_ctrl_c(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    handler: Any = signal.getsignal(signal.SIGINT)
    if callable(handler) and handler is not _as_ctrl_c:
        handler(signal.SIGINT, frame)  # asyncio.Runner: cancel the main task; else default_int_handler: raise
        return
    raise KeyboardInterrupt


def received() -> int:
    """The signal that stopped the run: the first SIGTERM or SIGHUP seen, else SIGINT."""
    return _received[0] if _received else signal.SIGINT


def exit_code() -> int:
    return 128 + int(received())


def name() -> str:
    return {signal.SIGINT: "Interrupted (Ctrl-C)", signal.SIGTERM: "Stopped by SIGTERM",
            signal.SIGHUP: "Stopped by SIGHUP (the terminal went away)"}.get(signal.Signals(received()),
                                                                           "Interrupted")


_state: list[Callable[[], str]] = []
_told: list[bool] = []


def report_state(describe: Callable[[], str]) -> None:
    """What an interruption now leaves behind, in words (apply() registers its record of the run)."""
    _state[:] = [describe]


def message() -> str:
    """The one line an interruption outside the plan's own error handling prints."""
    state = _state[0]() if _state else ""
    _told.append(True)
    return f"{name()}. {state or 'Nothing was changed.'}"


def mark_told() -> None:
    """The run's own error already reported the interruption (apply's Interrupted): a signal that
    arrives while that is printed must not print it a second time."""
    _told.append(True)


def told() -> bool:
    """Whether an interruption was already reported (message() was asked for)."""
    return bool(_told)


@contextmanager
def deferred(*, deliver: bool = True) -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP while the block runs; deliver them, in order, once it is done
    (``deliver=False``: the run is ending anyway; they are dropped, a SIGTERM or SIGHUP still naming its
    exit code)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[tuple[int, FrameType | None]] = []
    saved = {sig: signal.getsignal(sig) for sig in HANDLED}

    def hold(signum: int, frame: FrameType | None) -> None:
        if signum != signal.SIGINT:
            _received.append(signum)
        pending.append((signum, frame))

    for sig in HANDLED:
        signal.signal(sig, hold)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        for signum, frame in pending if deliver else ():
            handler = saved[signal.Signals(signum)]
            if callable(handler):
                handler(signum, frame)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), signum)
