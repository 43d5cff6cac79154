"""The `cypht-azure` command line: parse, call one operation, render, exit with a documented code."""

from __future__ import annotations

import gc
import sys
from typing import Annotated, Any, NoReturn

import typer

from cypht_azure import __version__
from cypht_azure.cli.help import RootGroup

HELP = """Set up Cypht's Outlook and Office365 OAuth in Microsoft Entra ID without the Azure portal.

`provision` registers the app Cypht needs and writes its client ID and a new client secret straight
into Cypht's .env; `rotate-secret` replaces the secret safely (run it on a schedule); `status` shows
what is there and what expires; `deprovision` removes it. Try everything first with --sandbox, which
runs against a local emulator instead of Azure.

Exit codes: 0 ok, 1 failed, 2 invalid input (nothing changed), 3 sign-in failed, 4 missing role or
permission, 5 app not found, 6 status or doctor found a problem, 7 confirmation needed (use --yes),
8 a deploy hook failed (old secret kept), 130 interrupted (Ctrl-C), 143 SIGTERM, 129 SIGHUP.
"""

# Command name -> the module under cypht_azure.cli that defines it (the root help lists them in this order).
MODULES = {
    "provision": "provision", "rotate-secret": "rotate", "status": "status", "doctor": "doctor",
    "deprovision": "deprovision", "restore": "deprovision", "schedule": "schedule", "record": "record",
    "log": "log",
    "emulator": "emulator_cmd",
}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cypht-azure {__version__}")
        raise typer.Exit()


def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    pass


def new_app(commands: list[str] | None = None) -> typer.Typer:
    """The `cypht-azure` application with these commands (all when None). A command not registered is
    loaded when asked for (RootGroup.get_command): a run imports only the module of the command it runs."""
    import importlib

    application = typer.Typer(
        name="cypht-azure",
        cls=RootGroup,
        help=HELP,
        no_args_is_help=True,
        rich_markup_mode=None,  # plain help: rich would double the start-up time
        pretty_exceptions_enable=False,  # tracebacks with local variables could show a secret
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    application.callback()(_root)
    for module in dict.fromkeys(MODULES[name] for name in (MODULES if commands is None else commands)):
        importlib.import_module(f"cypht_azure.cli.{module}").register(application)
    return application


def load_command(name: str) -> Any:
    """The click command `name` (None for an unknown name), built from its own module only."""
    if name not in MODULES:
        return None
    import typer.main

    group = typer.main.get_command(new_app([name]))
    return group.commands.get(name)  # type: ignore[attr-defined]


def __getattr__(name: str) -> Any:
    if name == "app":  # every command: the CLI reference, tests
        full = globals()["app"] = new_app()
        return full
    raise AttributeError(name)


def invoked(argv: list[str]) -> list[str] | None:
    """The command this command line runs, when it names one (options come after it)."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return [first] if first in MODULES and argv[0] == first else None


def main() -> None:
    # interrupts and output first (start.py imported interrupts already): a Ctrl-C at any later point
    # of the start-up is one line and the signal's exit code, never a traceback.
    from cypht_azure import interrupts
    from cypht_azure.cli.output import STDERR, guard_descriptors

    try:
        guard_descriptors()
        interrupts.install()  # again: `cypht_azure.cli:main` may be called without cypht_azure.start
        from cypht_azure.secret import no_core_dumps

        no_core_dumps()
        # Optional packages httpcore imports whenever they are installed, which we never use: h2 (our
        # Graph client speaks HTTP/1.1; msgraph-core's httpx[http2] installs it: 1.4 MiB and ~10 ms) and
        # trio (we run on asyncio; a selenium or similar in the same environment brings it: ~4 MiB and 50
        # modules). Marked absent, httpcore takes its own paths for a missing package.
        for unused in ("h2", "trio"):
            sys.modules.setdefault(unused, None)  # type: ignore[arg-type]
        # A command lives for seconds and its data (JSON, .env text) has no reference cycles, but the
        # collector's passes over the ~800 modules a Graph command loads cost ~15% of its CPU time.
        # Memory still goes back by reference counting; `emulator`, which runs for hours, turns it back on.
        gc.disable()
        new_app(invoked(sys.argv[1:]))()
    except SystemExit as exc:
        code = exc.code
        if code == 130 and not interrupts.told():  # Ctrl-C while the command line was parsed (typer: exit 130)
            STDERR.line(f"error: {interrupts.message()}")
            code = interrupts.exit_code()
        _exit(code)
    except KeyboardInterrupt:
        if not interrupts.told():  # the run's own error may have said it already
            STDERR.line(f"error: {interrupts.message()}")
        _exit(interrupts.exit_code())


def _exit(code: object) -> NoReturn:
    """Exit without tearing the interpreter down.

    Freeing the ~850 modules a Graph command loads takes 0.2-0.3 s after the work is done, a third of
    a provision at loopback speed. What an orderly exit does that matters still happens: atexit
    handlers run (logging.shutdown flushes the log files) and stdout and stderr are flushed; our files
    are closed by `with` blocks long before. A non-daemon thread still running (a worker pool nobody
    shut down) gets the interpreter's own exit, which stops pools and waits for threads.
    """
    import atexit
    import os
    import threading
    from contextlib import suppress

    if any(t is not threading.current_thread() and not t.daemon and t.is_alive() for t in threading.enumerate()):
        raise SystemExit(code)
    if code is None or isinstance(code, int):
        status = code or 0
    else:
        from cypht_azure.cli.output import STDERR

        STDERR.line(str(code))
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError, AttributeError):  # a closed pipe (`| head`) or stream: nothing to say
            stream.flush()
    os._exit(status)
