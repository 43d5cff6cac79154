"""`cypht-azure emulator`: serve the local Entra ID + Graph emulator in the foreground."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cypht_azure.cli.common import choices
from cypht_azure.cli.help import GroupedCommand
from cypht_azure.errors import ExitCode

SIGN_IN_MODES = ("page", "auto")  # the emulator's own list, not imported here: --help stays fast


def _sign_in_mode(value: str) -> str:
    if value not in SIGN_IN_MODES:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(SIGN_IN_MODES)}.")
    return value


def emulator(
    state_dir: Annotated[Path, typer.Option("--state-dir", metavar="DIR", envvar="CYPHT_AZURE_EMULATOR_DIR",
                                            help="Folder for the tenant's state, certificates and emulator.json.")],
    port: Annotated[int, typer.Option("--port", metavar="PORT", min=0, max=65535,
                                      help="Port to listen on (0: any free port).")] = 0,
    bind: Annotated[str, typer.Option(
        "--bind", metavar="ADDR",
        help="Address to listen on. Beyond loopback (e.g. 0.0.0.0 for a Cypht container), the /_emulator "
             "admin endpoints demand the emulator admin's token.")] = "127.0.0.1",
    hosts: Annotated[list[str] | None, typer.Option(
        "--host", metavar="NAME",
        help="An extra host name or IP address for the TLS certificate, e.g. the name a Cypht container "
             "reaches the emulator by. Repeatable.")] = None,
    sign_in: Annotated[str, typer.Option(
        "--sign-in", metavar=choices(SIGN_IN_MODES), callback=_sign_in_mode,
        help="page: a person signs in on the emulator's sign-in page (choose an account, consent). auto: "
             "authorize redirects at once with a code for the account login_hint names.")] = "page",
) -> None:
    """Serve a local emulator of Microsoft Entra ID sign-in and Microsoft Graph over HTTPS until interrupted.

    When ready it writes STATE_DIR/emulator.json (endpoints, CA file, tenant, an administrator's client
    ID and secret) and prints how to point cypht-azure, azure-identity, msgraph-sdk, the Azure CLI or
    Cypht's OAuth endpoints at it. One emulator per state dir.

    Example: cypht-azure emulator --state-dir /tmp/entra --port 8443 --host cypht-emulator --bind 0.0.0.0
    """
    import gc

    from cypht_azure.emulator.service import EmulatorStartError, serve

    gc.enable()  # the CLI runs without the cycle collector (cli/__init__.py); a server must not
    try:
        serve(state_dir, port=port, bind=bind, hosts=hosts or [], sign_in="auto" if sign_in == "auto" else "page")
    except EmulatorStartError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(int(ExitCode.FAILED)) from None


def register(app: typer.Typer) -> None:
    app.command("emulator", cls=GroupedCommand)(emulator)
