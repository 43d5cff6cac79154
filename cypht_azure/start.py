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
        from cypht_azure.checkpoints import checkpoint

        checkpoint("started")
        _start_az_early()
        from cypht_azure.cli import main as run_cli
    except KeyboardInterrupt:
        _stopped_at_start()
    run_cli()


def _start_az_early() -> None:
    """`az` first when this run signs in with the Azure CLI: it starts while the CLI loads (azcli.py). The
    test is plain string work; azcli (subprocess, json ...) is imported only when it holds."""
    import os
    import sys

    argv = sys.argv[1:]
    if "azure-cli" in (os.environ.get("CYPHT_AZURE_AUTH"), *argv) or "--auth=azure-cli" in argv:
        from cypht_azure import azcli

        azcli.start_from_command_line(argv)


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
