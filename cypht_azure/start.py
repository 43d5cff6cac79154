"""The entry point of `cypht-azure` and `python -m cypht_azure`.

It imports nothing heavy before SIGTERM and SIGHUP are handled and Ctrl-C is caught: the command line
loads typer and, for a command, azure-identity and msgraph-sdk, a few hundred milliseconds in which a
Ctrl-C would otherwise print a Python traceback. Interrupted there, nothing was done: one line, and
the signal's exit code (130 for Ctrl-C). Only the interpreter's own start, before this module's first
line runs, is out of reach.
"""


def main() -> None:
    try:
        from cypht_azure import interrupts

        interrupts.install()
        from cypht_azure.operations.core.checkpoints import checkpoint

        checkpoint("started")
        from cypht_azure.cli import main as run_cli
    except KeyboardInterrupt:
        _stopped_at_start()
    run_cli()


def _stopped_at_start() -> None:
    import os
    import signal
    from contextlib import suppress

    from cypht_azure import interrupts

    for sig in interrupts.HANDLED:  # a second Ctrl-C while saying so changes nothing
        signal.signal(sig, signal.SIG_IGN)
    with suppress(OSError):  # stderr closed or gone: the exit code still says it
        os.write(2, f"error: {interrupts.message()}\n".encode())
    os._exit(interrupts.exit_code())
