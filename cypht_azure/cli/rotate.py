"""`cypht-azure rotate-secret`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
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
    RunDeployHooksOpt,
    SkipDeployHooksOpt,
    command,
    env,
    render_outcome,
    render_renewal,
    renewal_ui,
    run,
    sandbox_banner,
)
from cypht_azure.cli.help import GroupedCommand
from cypht_azure.errors import InputError


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
    all_installations: Annotated[bool, typer.Option(
        "--all", envvar=env("ALL"),
        help="Every installation recorded by this operator (see status --installations), each in turn, as "
             "certbot renew does; with --when-due, the daily job for all of them. One report; exit 1 if any failed.",
    )] = False,
) -> None:
    """Replace the client secret in .env with a new one, with no moment without a working secret.

    Adds a new secret, waits until Entra accepts it, writes it into every provider block of .env that
    uses the app, then removes the secrets it superseded. Removes only secrets cypht-azure created for
    this .env; others are listed and left alone. Safe to run from cron or CI.

    Example (daily):

        cypht-azure rotate-secret --env-file /var/www/cypht/.env --when-due

    Every installation this operator manages:

        cypht-azure rotate-secret --all --when-due
    """
    out = Output(common)

    def action() -> Any:
        from cypht_azure.durations import parse_duration, short_lifetime_warning
        from cypht_azure.operations.core import envstate
        from cypht_azure.operations.core.provision import MAX_SECRET_LIFETIME
        from cypht_azure.operations.core.rotate import RotateRequest
        from cypht_azure.operations.unattended.renewal import Renewal, renew, renew_all

        if all_installations:
            given = [flag for flag, value in (("--env-file", env_file), ("--app-id", app_id), ("--url", url),
                                              ("--switch-app", switch_app)) if value]
            if given:
                raise InputError(f"--all renews every recorded installation; {' and '.join(given)} "
                                 f"{'names' if len(given) == 1 else 'name'} one .env or app.",
                                 hint=f"Drop --all to rotate one .env, or drop {' and '.join(given)}.")
        lifetime = parse_duration(secret_lifetime, option="--secret-lifetime", maximum=MAX_SECRET_LIFETIME,
                                  maximum_text="2 years")
        if lifetime <= dt.timedelta(0):
            raise ValueError("--secret-lifetime must be more than 0 and at most 2 years (730d).")
        if (short := short_lifetime_warning("--secret-lifetime", lifetime)) is not None:
            out.warn(short)
        within = parse_duration(if_expiring_within, option="--if-expiring-within") if if_expiring_within else None

        def job_for(path: Path) -> Renewal:
            request = RotateRequest(
                env_file=path, app_id=app_id, url=url, when_due=when_due,
                hooks_timeout=deploy_hook_timeout, run_hooks_in_dry_run=run_deploy_hooks,
                skip_hooks=skip_deploy_hooks, if_expiring_within=within, keep_previous=keep_previous, switch_app=switch_app,
                secret_lifetime=lifetime, dry_run=dry_run, verify_timeout=verify_timeout,
            )
            return Renewal("rotate-secret", request, common.sign_in(), deploy_hook=list(deploy_hook or []),
                           notify=list(notify or []), secret_lifetime=secret_lifetime)

        with sandbox_banner(out, common.sandbox):
            if all_installations:
                return renew_all(job_for, renewal_ui(out), common.sign_in())
            return renew(job_for(envstate.resolve_env_path(env_file)), renewal_ui(out))

    result = run(common, out, action)
    if all_installations:
        render_all(out, result, common)
        return
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


def render_all(out: Output, result: Any, common: Common) -> None:
    """`--all`: one line per recorded installation, then one error with the counts if any failed."""
    if common.json:
        out.document(result.to_json() | {"sandbox": common.sandbox})
    elif not out.quiet:
        out.note(out.bold(f"{len(result.items)} recorded installation(s)"))
        for item in result.items:
            if item.exit_code:
                state = f"FAILED (exit {item.exit_code}): {item.error}"
            elif item.result is not None and item.result.new_key_id:
                state = f"rotated (expires {item.result.expires})"
            elif item.result is not None and item.result.skipped:
                state = f"not due: {item.result.skipped['reason']}"
            else:
                state = "nothing to do"
            out.note(f"  {item.env_file}  {state}")
    error = result.error()
    if error is not None:
        out.error_line(str(error))  # the report above is the one document --json prints
        raise typer.Exit(int(error.exit_code))


def register(app: typer.Typer) -> None:
    app.command("rotate-secret", cls=GroupedCommand)(rotate_secret)
