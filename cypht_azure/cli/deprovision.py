"""`cypht-azure deprovision` and `cypht-azure restore`."""

from __future__ import annotations

import shlex
from typing import Annotated, Any

import typer

from cypht_azure.cli.common import (
    AppIdOpt,
    Common,
    DryRunOpt,
    EnvFileOpt,
    FindByUrlOpt,
    Output,
    command,
    connection,
    env,
    render_outcome,
    run,
    sandbox_banner,
)
from cypht_azure.cli.confirm import confirmer
from cypht_azure.cli.help import GroupedCommand


@command
def deprovision(
    common: Common,
    env_file: EnvFileOpt = None,
    app_id: AppIdOpt = None,
    url: FindByUrlOpt = None,
    purge: Annotated[bool, typer.Option(
        "--purge", envvar=env("PURGE"), help="Delete permanently (otherwise restorable for 30 days).",
    )] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", envvar=env("YES"),
                                      help="Do not ask; required without a terminal.")] = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Delete the app registration and take its keys out of .env (other lines stay as they are).

    Lines it appended go; lines of Cypht's template it filled (OUTLOOK_CLIENT_ID= ...) stay, empty.

    The deletion can be undone for 30 days with `cypht-azure restore --app-id ID` unless --purge is given.
    Asks on a terminal; elsewhere it refuses unless --yes is given.

    Example: cypht-azure deprovision --env-file /var/www/cypht/.env --dry-run
    """
    out = Output(common)

    def action() -> Any:
        from cypht_azure.operations.core import envstate
        from cypht_azure.operations.core.connect import connection as connect
        from cypht_azure.operations.core.connect import for_env_file, records_folder
        from cypht_azure.operations.core.deprovision import DeprovisionRequest
        from cypht_azure.operations.core.runner import run_deprovision

        request = DeprovisionRequest(env_file=envstate.resolve_env_path(env_file), app_id=app_id, url=url,
                                     purge=purge, dry_run=dry_run, yes=yes)
        # the tenant and endpoints of the installation record, under the options given now (as status)
        layered = for_env_file(common.sign_in(), request.env_file, out.warn)
        with sandbox_banner(out, common.sandbox):
            return run_deprovision(request, lambda: connect(layered), out, confirmer(out), out.record,
                                   records_folder(common.sign_in()))

    result = run(common, out, action)
    undo = f"Undo within 30 days: cypht-azure restore --app-id {result.client_id}"
    render_outcome(out, result, common=common, next_step=undo if result.deleted and not result.purged else None)


@command
def restore(
    common: Common,
    app_id: Annotated[str, typer.Option("--app-id", metavar="CLIENT_ID", envvar=env("APP_ID"),
                                        help="Client ID of the deleted app registration.")],
    env_file: EnvFileOpt = None,
) -> None:
    """Restore an app registration deleted by deprovision (within 30 days).

    Its client secrets come back with it, but deprovision removed them from .env: run the
    `cypht-azure provision --app-id ID --url URL --env-file FILE` it prints afterwards to write a new one
    (--env-file here only names the .env in that command; restore does not touch it).

    Example: cypht-azure restore --app-id 11111111-2222-3333-4444-555555555555
    """
    out = Output(common)

    def action() -> Any:
        import uuid

        from cypht_azure.operations.core.runner import run_restore

        try:
            uuid.UUID(app_id.strip())
        except ValueError:
            raise ValueError(f"--app-id {app_id!r} is not an application (client) ID "
                             "(00000000-0000-0000-0000-000000000000).") from None

        with sandbox_banner(out, common.sandbox):
            return run_restore(app_id.strip().lower(), lambda: connection(common, out), out, out.record)

    result = run(common, out, action)
    from cypht_azure.operations.checks.findings import provision_command
    from cypht_azure.operations.core import envstate

    env_path = envstate.resolve_env_path(env_file).absolute()
    command = provision_command(result.redirect_uris[0] if result.redirect_uris else None, "--app-id",
                                result.client_id, "--env-file", shlex.quote(str(env_path)))
    render_outcome(out, result, common=common,
                   headline=f"Restored {result.display_name!r} ({result.client_id})." if result.changed else None,
                   next_step=f"Next: {command}")


def register(app: typer.Typer) -> None:
    app.command("deprovision", cls=GroupedCommand)(deprovision)
    app.command("restore", cls=GroupedCommand)(restore)
