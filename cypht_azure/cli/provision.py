"""`cypht-azure provision`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cypht_azure.cli.common import (
    Common,
    DeployHookOpt,
    DeployHookTimeoutOpt,
    EnvFileOpt,
    NotifyOpt,
    Output,
    RunDeployHooksOpt,
    SkipDeployHooksOpt,
    choices,
    command,
    env,
    render_outcome,
    render_renewal,
    renewal_ui,
    run,
    sandbox_banner,
)
from cypht_azure.cli.confirm import confirmer
from cypht_azure.cli.help import GroupedCommand
from cypht_azure.cypht import AUDIENCES, PROVIDERS

REG = "Registration"
REHEARSAL = "Rehearsal with a local Cypht"


@command
def provision(
    common: Common,
    url: Annotated[str | None, typer.Option(
        "--url", metavar="URL", envvar=env("URL"), rich_help_panel=REG,
        help="Cypht's public base URL, e.g. https://mail.example.com or https://example.com/cypht. "
             "The redirect URI is this URL with a trailing slash and no query.",
    )] = None,
    redirect_uri: Annotated[list[str] | None, typer.Option(
        "--redirect-uri", metavar="URI", envvar=env("REDIRECT_URI"), rich_help_panel=REG,
        help="Register this redirect URI instead of the one derived from --url (repeatable; the first "
             "one is written to *_CLIENT_URI). With --url too, the URL's own redirect URI must be among them.",
    )] = None,
    remove_redirect_uri: Annotated[list[str] | None, typer.Option(
        "--remove-redirect-uri", metavar="URI", envvar=env("REMOVE_REDIRECT_URI"), rich_help_panel=REG,
        help="Drop this redirect URI from the registration (repeatable), e.g. https://host/?page=home from "
             "a registration made in the portal, which Entra refuses for personal accounts. Shown in the plan.",
    )] = None,
    env_file: EnvFileOpt = None,
    provider: Annotated[str, typer.Option(
        "--provider", metavar=choices([*PROVIDERS, "both"]), envvar=env("PROVIDER"), rich_help_panel=REG,
        help="Which Cypht provider blocks to write: outlook, office365 or both (one registration serves both).",
    )] = "both",
    name: Annotated[str | None, typer.Option(
        "--name", metavar="NAME", envvar=env("NAME"), rich_help_panel=REG,
        help="Display name in the Entra admin center. Default: 'Cypht webmail (HOST)'.",
    )] = None,
    audience: Annotated[str, typer.Option(
        "--audience", metavar=choices(AUDIENCES), envvar=env("AUDIENCE"), rich_help_panel=REG,
        help="Who may sign in: any (work/school and personal accounts; needed by Cypht's default "
             "login.live.com endpoints), personal, single-tenant or multi-tenant (Graph's signInAudience "
             "names work too). single-tenant and multi-tenant write login.microsoftonline.com endpoints, "
             "where Cypht's wl.imap scope does not work yet: see docs/how-it-works.md.",
    )] = "any",
    secret_lifetime: Annotated[str, typer.Option(
        "--secret-lifetime", metavar="DURATION", envvar=env("SECRET_LIFETIME"), rich_help_panel=REG,
        help="How long a new client secret lives: 30d, 6m, 1y ... at most 2y. Rotate with rotate-secret.",
    )] = "365d",
    app_id: Annotated[str | None, typer.Option(
        "--app-id", metavar="CLIENT_ID", envvar=env("APP_ID"), rich_help_panel=REG,
        help="Manage this existing app registration (client ID) instead of finding or creating one.",
    )] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", envvar=env("DRY_RUN"), help="Show what would be created, changed and written; change nothing.",
    )] = False,
    verify: Annotated[bool, typer.Option(
        "--verify/--no-verify", envvar=env("VERIFY"),
        help="After writing a new secret, wait until Entra accepts it at the token endpoint.",
    )] = True,
    verify_timeout: Annotated[float, typer.Option(
        "--verify-timeout", metavar="SECONDS", envvar=env("VERIFY_TIMEOUT"), min=1.0, help="Seconds to wait for that.",
    )] = 120.0,
    deploy_hook: DeployHookOpt = None,
    deploy_hook_timeout: DeployHookTimeoutOpt = 300.0,
    run_deploy_hooks: RunDeployHooksOpt = False,
    skip_deploy_hooks: SkipDeployHooksOpt = False,
    notify: NotifyOpt = None,
    emulator_endpoints: Annotated[bool, typer.Option(
        "--emulator-endpoints", envvar=env("EMULATOR_ENDPOINTS"), rich_help_panel=REHEARSAL,
        help="Also write the emulator's sign-in URLs into *_AUTH_URI, *_TOKEN_URI and *_REFRESH_URI, so a local "
             "Cypht completes its add-account flow against the emulator. Refused unless the run is against a "
             "`cypht-azure emulator` (--authority-host, or --sandbox with one serving the sandbox's folder).",
    )] = False,
    yes: Annotated[bool, typer.Option(
        "--yes", "-y", envvar=env("YES"),
        help="Change the URL of an existing installation without asking (needed without a terminal).",
    )] = False,
    emulator_url: Annotated[str | None, typer.Option(
        "--emulator-url", metavar="URL", envvar=env("EMULATOR_URL"), rich_help_panel=REHEARSAL,
        help="With --emulator-endpoints: the emulator's base URL as Cypht and the browser reach it, e.g. "
             "https://cypht-emulator:8443 (a name given to `cypht-azure emulator --host`). Default: the URL "
             "cypht-azure uses.",
    )] = None,
) -> None:
    """Register (or repair) Cypht's Outlook/Office365 app and write its client ID and secret into .env.

    Idempotent: run it again and it changes nothing unless something drifted. The secret goes straight
    into .env (written atomically, other lines untouched) and is never shown.

    Examples:

        cypht-azure provision --url https://mail.example.com --env-file /var/www/cypht/.env

    Try it without a tenant first:

        cypht-azure provision --sandbox --url https://mail.example.com --env-file ./cypht.env
    """
    out = Output(common)

    def action() -> Any:
        from cypht_azure.cypht import InvalidInput, parse_providers
        from cypht_azure.durations import parse_duration, short_lifetime_warning
        from cypht_azure.errors import InputError
        from cypht_azure.operations.core import envstate
        from cypht_azure.operations.core.provision import MAX_SECRET_LIFETIME, ProvisionRequest
        from cypht_azure.operations.unattended.renewal import Renewal, renew

        try:
            providers = parse_providers(provider)
        except InvalidInput as exc:
            raise InputError(str(exc)) from None
        lifetime = parse_duration(secret_lifetime, option="--secret-lifetime", maximum=MAX_SECRET_LIFETIME,
                                  maximum_text="2 years")
        request = ProvisionRequest(
            url=url, env_file=envstate.resolve_env_path(env_file), redirect_uris=list(redirect_uri or []),
            providers=providers, name=name, audience=audience, secret_lifetime=lifetime,
            hooks_timeout=deploy_hook_timeout, run_hooks_in_dry_run=run_deploy_hooks,
            skip_hooks=skip_deploy_hooks,
            app_id=app_id, dry_run=dry_run, verify=verify, verify_timeout=verify_timeout,
            emulator_endpoints=emulator_endpoints, emulator_url=emulator_url,
            remove_redirect_uris=list(remove_redirect_uri or []), yes=yes, confirm=confirmer(out),
        )
        if (short := short_lifetime_warning("--secret-lifetime", lifetime)) is not None:
            out.warn(short)
        job = Renewal("provision", request, common.sign_in(), deploy_hook=list(deploy_hook or []),
                      notify=list(notify or []), secret_lifetime=secret_lifetime, audience=audience)
        with sandbox_banner(out, common.sandbox):
            return renew(job, renewal_ui(out))

    result = run(common, out, action)
    from cypht_azure.cypht import scope_note

    if (note := scope_note(result.sign_in_audience)) is not None and not out.quiet:
        out.warn(note)
    details = [
        ("Application (client) ID", result.client_id), ("Object ID", result.object_id), ("Tenant", result.tenant_id),
        ("Display name", result.display_name), ("Sign-in audience", result.sign_in_audience),
        ("Redirect URIs", ", ".join(result.redirect_uris)),
    ]
    if result.secret_key_id:
        details.append(("Client secret ID", f"{result.secret_key_id} (expires {result.secret_expires})"))
    details.append((".env", result.env_file))
    if result.secret_verified:
        details.append(("Client secret", "works at the token endpoint"))
    render_outcome(out, result, common=common, details=details, next_step=(
        "Next: in Cypht, open the add-account dialog and choose Outlook.com or Office365. "
        "Cypht re-reads .env on every request; no restart is needed."))
    render_renewal(out, result, common)


def register(app: typer.Typer) -> None:
    app.command("provision", cls=GroupedCommand)(provision)
