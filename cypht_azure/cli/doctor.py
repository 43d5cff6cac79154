"""`cypht-azure doctor`."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Annotated, Any

import typer

from cypht_azure.cli.common import (
    Common,
    EnvFileOpt,
    Output,
    command,
    env,
    render_findings,
    run,
    sandbox_banner,
)
from cypht_azure.cli.help import GroupedCommand
from cypht_azure.errors import ExitCode


@command
def doctor(
    common: Common,
    env_file: EnvFileOpt = None,
    warn_within: Annotated[str, typer.Option(
        "--warn-within", envvar=env("WARN_WITHIN"), metavar="DURATION",
        help="Exit 6 when the secret Cypht uses expires within this time (e.g. 14d).",
    )] = "30d",
    provider: Annotated[str, typer.Option(
        "--provider", metavar="PROVIDER", envvar=env("PROVIDER"),
        help="Which of Cypht's provider blocks to check: outlook, office365 or both.",
    )] = "both",
    login_hint: Annotated[str | None, typer.Option(
        "--login-hint", metavar="EMAIL", envvar=env("LOGIN_HINT"),
        help="Against the emulator: the account that signs in (default: a made-up personal account at "
             "login.live.com and /consumers, else the emulator's administrator).",
    )] = None,
) -> None:
    """Will Cypht's Outlook/Office365 sign-in work? Checks .env the way Cypht reads and uses it.

    For each provider block: reads the values as Cypht does (a variable set in the environment wins over
    .env; an empty value means Cypht's default), builds the authorize URL exactly as Cypht does, and
    checks it against Entra: the registration exists and accepts the accounts the endpoint signs in, the
    redirect URI is registered character for character, wl.imap is valid at the endpoint, and the secret
    gets a token and does not expire within --warn-within. Against the emulator (--sandbox or
    --authority-host) it also signs in as a simulated user, redeems the code with the .env secret and
    refreshes, reporting each answer.

    Exit 0: Cypht's sign-in works. Exit 6: it would fail (or the secret expires within --warn-within).

    Example:

        cypht-azure doctor --env-file /var/www/cypht/.env
    """
    out = Output(common)

    def action() -> Any:
        from cypht_azure.cypht import InvalidInput, parse_providers
        from cypht_azure.durations import parse_duration
        from cypht_azure.errors import InputError
        from cypht_azure.operations.checks.doctor import DoctorRequest, run_doctor
        from cypht_azure.operations.core import envstate
        from cypht_azure.operations.core.connect import connection as connect
        from cypht_azure.operations.core.connect import for_env_file

        within = parse_duration(warn_within, option="--warn-within")
        try:
            providers = parse_providers(provider)
        except InvalidInput as exc:
            raise InputError(str(exc)) from None
        env_path = envstate.resolve_env_path(env_file)
        request = DoctorRequest(env_file=env_path, warn_within=within, providers=providers, login_hint=login_hint)
        # the tenant and endpoints of the installation record, under the options given now (as status)
        layered = for_env_file(common.sign_in(), env_path, out.warn)
        with sandbox_banner(out, common.sandbox):
            return run_doctor(request, lambda: connect(layered), out, os.environ)

    result = run(common, out, action)
    if common.json:
        out.document(result.to_json() | {"sandbox": common.sandbox, "failing": not result.works})
    elif not out.quiet:
        render(result, out)
    if not result.works:
        raise typer.Exit(int(ExitCode.FINDINGS))


def render(result: Any, out: Output) -> None:
    def say(text: str) -> None:  # nothing the process environment set is shown (doctor.FROM_ENVIRONMENT)
        out.note(result.redact(text))

    say(out.bold(f"Cypht's sign-in with {result.env_file}")
             + (f"  (tenant {result.tenant_id})" if result.tenant_id else ""))
    for p in result.providers:
        say("")
        verdict = "works" if p.works else ("not configured" if not p.configured else "FAILS")
        say(out.bold(f"{p.label} ({p.provider.upper()}_*): {verdict}"))
        if not p.configured:
            continue
        sources = {k.key.split("_", 1)[1]: k for k in p.keys}
        origin = {suffix: f"{k.source}{', shadows .env' if k.shadowed else ''}" for suffix, k in sources.items()}
        shown = p.shown()
        say(f"  client ID      {shown['client_id']}  ({origin['CLIENT_ID']})")
        say(f"  redirect URI   {shown['client_uri']}  ({origin['CLIENT_URI']})")
        say(f"  endpoints      {p.endpoint}, signs in {p.accounts} accounts  ({origin['AUTH_URI']})"
                 + (f"; app accepts {p.sign_in_audience}" if p.sign_in_audience else ""))
        secret = f"  client secret  ({origin['CLIENT_SECRET']})"
        if p.secret_key_id:
            days = "" if p.secret_days_left is None else f", {p.secret_days_left:.0f} days left"
            secret += f" ID {p.secret_key_id}, expires {p.secret_expires}{days}"
        if p.secret_check:
            secret += f"; token endpoint: {p.secret_check}"
        say(secret)
        if shown["authorize_url"]:
            say(f"  authorize URL  {shown['authorize_url']}")
        for step in p.steps:
            mark = {True: "ok  ", False: "FAIL", None: "--  "}[step.ok]
            say(f"  {mark} {step.name:<9} {step.answer}")
    say("")
    render_findings(out, [replace(f, message=result.redact(f.message), fix=result.redact(f.fix))
                          for f in result.findings])
    if result.works:
        say(out.green("Cypht's sign-in should work."))
    else:
        say("Cypht's sign-in would fail (exit 6)." if any(f.severity == "error" for f in result.findings)
                 else "Act now: see above (exit 6).")


def register(app: typer.Typer) -> None:
    app.command("doctor", cls=GroupedCommand)(doctor)
