"""`cypht-azure record migrate`: move the settings an older cypht-azure wrote into `.env` to the
installation record (docs/ci.md, "The installation record")."""

from __future__ import annotations

from typing import Any

import typer

from cypht_azure.cli.common import Common, DryRunOpt, EnvFileOpt, JsonOpt, Output, QuietOpt, run
from cypht_azure.cli.help import GroupedCommand


def migrate(
    env_file: EnvFileOpt = None,
    dry_run: DryRunOpt = False,
    json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Move the CYPHT_AZURE_* settings an older cypht-azure wrote into .env to the installation record.

    Those settings (tenant, cloud, authority host, Graph URL, CA file, audience, notify URLs) are no
    longer read from .env: the web server user can write .env, and must not decide where the operator's
    credential is sent. migrate shows them, copies them into the record of this .env (kept by the
    operator: /etc/cypht-azure/installations/ for root, $XDG_CONFIG_HOME/cypht-azure/installations/
    otherwise) and removes them from .env. A setting the record already holds is kept as it is there.
    Check the values it shows: if you did not write them, someone else did.

    Example:

        cypht-azure record migrate --env-file /var/www/cypht/.env --dry-run
    """
    common = Common(json=json, quiet=quiet)
    out = Output(common)

    def work() -> Any:
        from cypht_azure.operations.core import envstate
        from cypht_azure.operations.unattended import renewal

        return renewal.migrate(envstate.resolve_env_path(env_file), dry_run=dry_run)

    result = run(common, out, work)
    if common.json:
        out.document(result.to_json())
        return
    if not result.moved:
        out.note(f"Nothing to move: {result.env_file} holds no settings of an older cypht-azure.")
        return
    out.note(out.bold(f"Settings in {result.env_file}" + (" (dry run, nothing changed):" if dry_run else ":")))
    for key, value in result.moved.items():
        out.note(f"  {key}={value}")
    if dry_run:
        out.note(f"Run without --dry-run to move them to {result.record} and remove them from .env.")
    else:
        out.note(f"Moved to the installation record {result.record} and removed from {result.env_file}.")


def register(app: typer.Typer) -> None:
    group = typer.Typer(name="record", no_args_is_help=True, rich_markup_mode=None,
                        help="The installation record: what later runs of an installation reuse (docs/ci.md).")
    group.command("migrate", cls=GroupedCommand)(migrate)
    app.add_typer(group)
