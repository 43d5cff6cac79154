"""`cypht-azure rotate-secret`."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import typer

from cypht_azure.cli.common import (
    AppIdOpt,
    Common,
    DeployHookOpt,
    DeployHookTimeoutOpt,
    DryRunOpt,
    EnvFileOpt,
    FindByUrlOpt,
    NotifyOpt,
    Output,
    Renewal,
    RunDeployHooksOpt,
    SkipDeployHooksOpt,
    command,
    connection,
    env,
    finish_renewal,
    prepare_renewal,
    render_outcome,
    render_renewal,
    sandbox_banner,
)
from cypht_azure.cli.help import GroupedCommand


@command
def rotate_secret(
    common: Common,
    env_file: EnvFileOpt = None,
    app_id: AppIdOpt = None,
    url: FindByUrlOpt = None,
    if_expiring_within: Annotated[str | None, typer.Option(
        "--if-expiring-within", envvar=env("IF_EXPIRING_WITHIN"), metavar="DURATION",
        help="Rotate only if the secret in .env expires within this time (e.g. 30d); otherwise do nothing "
             "and exit 0. Made for daily schedules.",
    )] = None,
    when_due: Annotated[bool, typer.Option(
        "--when-due", envvar=env("WHEN_DUE"),
        help="Rotate only when less than a third of the secret's lifetime is left, or its expiry is unknown "
             "or past (certbot's rule); otherwise do nothing and exit 0. What `schedule install` runs.",
    )] = False,
    keep_previous: Annotated[bool, typer.Option(
        "--keep-previous", envvar=env("KEEP_PREVIOUS"),
        help="Leave the old secret to expire by itself instead of removing it.",
    )] = False,
    secret_lifetime: Annotated[str, typer.Option(
        "--secret-lifetime", envvar=env("SECRET_LIFETIME"), metavar="DURATION",
        help="How long the new secret lives (at most 2y).",
    )] = "365d",
    verify_timeout: Annotated[float, typer.Option(
        "--verify-timeout", metavar="SECONDS", envvar=env("VERIFY_TIMEOUT"), min=1.0,
        help="Seconds to wait for Entra to accept the new secret before .env is changed.",
    )] = 120.0,
    switch_app: Annotated[bool, typer.Option(
        "--switch-app", envvar=env("SWITCH_APP"),
        help="Let --app-id name another app registration than the one .env names, and switch .env to it.",
    )] = False,
    dry_run: DryRunOpt = False,
    deploy_hook: DeployHookOpt = None,
    deploy_hook_timeout: DeployHookTimeoutOpt = 300.0,
    run_deploy_hooks: RunDeployHooksOpt = False,
    skip_deploy_hooks: SkipDeployHooksOpt = False,
    notify: NotifyOpt = None,
) -> None:
    """Replace the client secret in .env with a new one, with no moment without a working secret.

    Adds a new secret, waits until Entra accepts it, writes it into every provider block of .env that
    uses the app, then removes the secrets it superseded. Removes only secrets cypht-azure created for
    this .env; others are listed and left alone. Safe to run from cron or CI.

    Example (daily):

        cypht-azure rotate-secret --env-file /var/www/cypht/.env --when-due
    """
    out = Output(common)
    from cypht_azure.operations.core import envstate

    env_path = envstate.resolve_env_path(env_file)
    prepared: list[Renewal] = []

    def action() -> Any:
        from cypht_azure.durations import parse_duration, short_lifetime_warning
        from cypht_azure.operations.core.provision import MAX_SECRET_LIFETIME
        from cypht_azure.operations.core.rotate import RotateRequest
        from cypht_azure.operations.core.runner import run_rotate
        from cypht_azure.operations.unattended import settings

        recorded = settings.load(env_path)
        layered = common.with_recorded(recorded)
        urls = notify if "notify" in common.user_set else recorded.get("notify")
        renewal = prepare_renewal(layered, env_path, deploy_hook=deploy_hook, notify=urls, own={},
                                  skip_hooks=skip_deploy_hooks)
        prepared.append(renewal)

        lifetime = parse_duration(secret_lifetime, option="--secret-lifetime", maximum=MAX_SECRET_LIFETIME,
                                  maximum_text="2 years")
        if lifetime <= dt.timedelta(0):
            raise ValueError("--secret-lifetime must be more than 0 and at most 2 years (730d).")
        if (short := short_lifetime_warning("--secret-lifetime", lifetime)) is not None:
            out.warn(short)
        request = RotateRequest(
            env_file=env_path, app_id=app_id, url=url, when_due=when_due, deploy_hooks=renewal.hooks,
            hooks_timeout=deploy_hook_timeout, run_hooks_in_dry_run=run_deploy_hooks, record=renewal.record,
            skip_hooks=skip_deploy_hooks,
            if_expiring_within=parse_duration(if_expiring_within, option="--if-expiring-within")
            if if_expiring_within else None,
            keep_previous=keep_previous, switch_app=switch_app, secret_lifetime=lifetime, dry_run=dry_run, verify_timeout=verify_timeout,
        )
        with sandbox_banner(out, common.sandbox):
            return run_rotate(request, lambda: connection(layered, out), out, out.record)

    result = finish_renewal(common, out, prepared, "rotate-secret", env_path, action, dry_run=dry_run)
    details = []
    if result.new_key_id:
        details.append(("New client secret ID", f"{result.new_key_id} (expires {result.expires})"))
    if result.keys_written and not result.dry_run:
        details.append(("Written to", f"{', '.join(result.keys_written)} in {result.env_file}"))
    if result.removed_key_ids:
        details.append(("Removed", ", ".join(result.removed_key_ids)))
    headline = None
    if result.skipped:
        headline = f"Not due: {result.skipped['reason']}." + (" Cleaned up." if result.changed else "")
    elif result.new_key_id:
        headline = f"Rotated the client secret of {result.client_id}."
    render_outcome(out, result, common=common, headline=headline, details=details)
    render_renewal(out, result, common)


def register(app: typer.Typer) -> None:
    app.command("rotate-secret", cls=GroupedCommand)(rotate_secret)
