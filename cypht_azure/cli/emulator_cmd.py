"""`cypht-azure emulator`: serve the local Entra ID + Graph emulator in the foreground."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cypht_azure.cli.help import GroupedCommand


def emulator(
    state_dir: Annotated[Path, typer.Option("--state-dir", metavar="DIR", envvar="CYPHT_AZURE_EMULATOR_DIR",
                                            help="Folder for the tenant's state, certificates and emulator.json.")],
    port: Annotated[int, typer.Option("--port", metavar="PORT", min=0, max=65535, help="Port on 127.0.0.1 (0: any free port).")] = 0,
) -> None:
    """Serve a local emulator of Microsoft Entra ID sign-in and Microsoft Graph over HTTPS until interrupted.

    When ready it writes STATE_DIR/emulator.json (endpoints, CA file, tenant, an administrator's client
    ID and secret) and prints how to point cypht-azure, azure-identity, msgraph-sdk or the Azure CLI at it.

    Example: cypht-azure emulator --state-dir /tmp/entra
    """
    from cypht_azure.emulator import serve

    serve(state_dir, port=port)


def register(app: typer.Typer) -> None:
    app.command("emulator", cls=GroupedCommand)(emulator)
