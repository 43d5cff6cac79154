"""`cypht-azure status`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cypht_azure.cli.common import (
    AppIdOpt,
    Common,
    EnvFileOpt,
    FindByUrlOpt,
    Output,
    command,
    connection,
    env,
    render_findings,
    run,
    sandbox_banner,
)
from cypht_azure.cli.help import GroupedCommand, with_context
from cypht_azure.errors import ExitCode


@command
def status(
    common: Common,
    env_file: EnvFileOpt = None,
    app_id: AppIdOpt = None,
    url: FindByUrlOpt = None,
    verify_secret: Annotated[bool | None, typer.Option(
        "--verify-secret/--no-verify-secret", envvar=env("VERIFY_SECRET"), show_default=False,
        help="Try the .env secret at the token endpoint (the default: one request, nothing changed). Given "
             "explicitly, a missing service principal is also created so the secret can be checked.",
    )] = None,
    fail_within: Annotated[str | None, typer.Option(
        "--fail-within", envvar=env("FAIL_WITHIN"), metavar="DURATION",
        help="Exit 6 when the .env secret expires within this time (e.g. 14d) or any finding is an error. "
             "For CI alerts.",
    )] = None,
    all_apps: Annotated[bool, typer.Option(
        "--all", envvar=env("ALL"), help="Every app tagged cypht-azure in the tenant, most urgent first.",
    )] = False,
    installations: Annotated[bool, typer.Option(
        "--installations", envvar=env("INSTALLATIONS"),
        help="List every .env this operator manages, from the installation records (path, client ID, secret "
             "expiry, last run), as certbot certificates does. Reads no .env and signs in nowhere.",
    )] = False,
    prometheus: Annotated[Path | None, typer.Option(
        "--prometheus", metavar="FILE", envvar=env("PROMETHEUS"),
        help="Also write the secret's expiry and the last rotate-secret run of this .env into FILE, in "
             "node-exporter's textfile format (e.g. /var/lib/prometheus/node-exporter/cypht-azure.prom).",
    )] = None,
) -> None:
    """Show the app, its redirect URIs and secrets next to what .env holds, and what is wrong or expiring.

    Findings: expired or expiring secret, a secret the token endpoint refuses, .env secret not on the
    app, redirect URI mismatch, query string with a personal-account audience, provider blocks pointing
    at different apps, missing keys, keys shadowed by the environment, app deleted.

    Examples:

        cypht-azure status --env-file /var/www/cypht/.env

        cypht-azure status --env-file /var/www/cypht/.env --fail-within 14d   # in CI: exit 6 = act now
    """
    out = Output(common)
    if installations:
        render_installations(run(common, out, lambda: _installations(common, env_file, app_id, url, all_apps)),
                             out, common)
        return

    def action() -> Any:
        from cypht_azure.durations import parse_duration
        from cypht_azure.errors import InputError
        from cypht_azure.operations.checks.status import (
            DEFAULT_WARN_WITHIN,
            StatusRequest,
            run_status,
            run_status_all,
        )
        from cypht_azure.operations.core import envstate
        from cypht_azure.operations.core.connect import connection as connect
        from cypht_azure.operations.core.connect import for_env_file

        within = parse_duration(fail_within, option="--fail-within") if fail_within else None
        if prometheus is not None and all_apps:
            raise ValueError("--prometheus writes the samples of one .env; it cannot be combined with --all.")
        if all_apps:
            single = [name for name, given in (("--app-id", app_id), ("--url", url),
                                               ("--verify-secret", verify_secret is True)) if given]
            if single:
                raise InputError(
                    f"--all reports every app registration tagged cypht-azure; {' and '.join(single)} "
                    f"{'is' if len(single) == 1 else 'are'} about one .env and its app.",
                    hint=f"Drop --all to check one app, or drop {' and '.join(single)} to list them all.")
        with sandbox_banner(out, common.sandbox):
            if all_apps:
                return run_status_all(lambda: connection(common, out), out), within
            env_path = envstate.resolve_env_path(env_file)
            # the tenant and endpoints of the installation record, under the options given now
            layered = for_env_file(common.sign_in(), env_path, out.warn)
            request = StatusRequest(env_file=env_path, app_id=app_id, url=url,
                                    verify_secret=verify_secret is not False,
                                    create_service_principal=verify_secret is True, warn_within=max(within or DEFAULT_WARN_WITHIN,
                                                                                 DEFAULT_WARN_WITHIN))
            return run_status(request, lambda: connect(layered), out), within

    result, within = run(common, out, action)
    if prometheus is not None:
        from cypht_azure.operations.unattended import prometheus as textfile

        run(common, out, lambda: textfile.update(prometheus, Path(result.env_file), result.env_secret_expires))
    failing = False
    if all_apps:
        limit = within.total_seconds() / 86400 if within else None
        failing = limit is not None and any(a.days_left is None or a.days_left <= limit for a in result.apps)
        if common.json:
            out.document(result.to_json() | {"sandbox": common.sandbox, "failing": failing})
        elif not out.quiet:
            render_all(result, out)
    else:
        managed = result.app is None or result.app["managed_by_cypht_azure"]
        for finding in result.findings:  # suggested commands keep this run's options (and a foreign app's ID)
            fix = finding.fix if managed else with_context(finding.fix, [("app_id", "--app-id",
                                                                          result.app["client_id"])])
            finding.fix = out.contextual(fix)
        if within is not None:
            days = result.env_secret_days_left
            failing = result.has_errors or days is None or days <= within.total_seconds() / 86400
        if common.json:
            out.document(result.to_json() | {"sandbox": common.sandbox, "failing": failing})
        elif not out.quiet:
            render(result, out)
        if any(f.code == "app-not-found" for f in result.findings):
            # Nothing by that client ID or URL, not even among deleted apps: exit 5 as every command does.
            raise typer.Exit(int(ExitCode.NOT_FOUND))
    if failing:
        raise typer.Exit(int(ExitCode.FINDINGS))


def _table(rows: list[list[str]], out: Output) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        line = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)).rstrip()
        out.note("  " + (out.bold(line) if n == 0 else line))


def render(result: Any, out: Output) -> None:
    app = result.app
    if app:
        out.note(out.bold(f"{app['display_name']}  ({'managed by cypht-azure' if app['managed_by_cypht_azure'] else 'not created by cypht-azure'})"))
        out.note(f"  Application (client) ID  {app['client_id']}")
        out.note(f"  Object ID                {app['object_id']}")
        out.note(f"  Sign-in audience         {app['sign_in_audience']}")
        out.note(f"  Redirect URIs            {', '.join(app['redirect_uris']) or '-'}")
    out.note("")
    out.note(out.bold(f".env: {result.env_file}"))
    rows = [["PROVIDER", "CLIENT_ID", "CLIENT_URI", "URI REGISTERED", "SECRET ID"]]
    for p in result.providers:
        registered = "-" if not app or not p.client_uri else ("yes" if p.client_uri in app["redirect_uris"] else "NO")
        rows.append([p.provider.upper(), p.client_id or "-", p.client_uri or "-", registered, p.secret_id or "-"])
    _table(rows, out)
    if result.secrets:
        out.note("")
        out.note(out.bold("Client secrets"))
        rows = [["SECRET ID", "HINT", "CREATED BY", "START", "END", "DAYS LEFT", "IN .ENV"]]
        for s in result.secrets:
            days = "-" if s.days_left is None else "<1" if 0 < s.days_left < 1 else f"{s.days_left:.0f}"
            rows.append([s.key_id, s.hint or "-", s.created_by, (s.start or "-")[:10], (s.end or "-")[:10], days,
                         ", ".join(p.upper() for p in s.in_env) or "-"])
        _table(rows, out)
    out.note("")
    if not result.findings:
        out.note(out.green("No problems found."))
    render_findings(out, result.findings)
    if result.secret_verified:
        out.note(out.green("The .env secret works at the token endpoint."))


def render_all(result: Any, out: Output) -> None:
    out.note(out.bold(f"{len(result.apps)} app registration(s) tagged cypht-azure in tenant {result.tenant_id}"))
    if not result.apps:
        return
    rows = [["DAYS LEFT", "NEAREST EXPIRY", "CLIENT ID", "NAME", "SECRETS"]]
    for a in result.apps:
        days = ("none live" if a.days_left is None or a.days_left <= 0
                else "<1" if a.days_left < 1 else f"{a.days_left:.0f}")
        rows.append([days, (a.nearest_expiry or "-")[:10], a.client_id, a.display_name or "-", str(a.secrets)])
    _table(rows, out)


def _installations(common: Common, *given: Any) -> Any:
    from cypht_azure.errors import InputError
    from cypht_azure.operations.core.connect import records_folder
    from cypht_azure.operations.unattended.record import installations

    if any(given):
        raise InputError("--installations lists every recorded installation; it takes no --env-file, --app-id, "
                         "--url or --all.", hint="Drop those options, or drop --installations.")
    return installations(records_folder(common.sign_in()))  # --sandbox: the sandbox's own


def render_installations(found: Any, out: Output, common: Common) -> None:
    if common.json:
        out.document({"installations": [i.to_json() for i in found], "sandbox": common.sandbox})
        return
    if out.quiet:
        return
    out.note(out.bold(f"{len(found)} installation(s) recorded in {found.folder}"))
    if not found:
        out.note("  (none: provision or rotate-secret --env-file F records one)")
        return
    rows = [[".ENV", "CLIENT ID", "SECRET EXPIRES", "LAST RUN"]]
    for i in found:
        run_ = i.last_run or {}
        last = f"{run_.get('time', '-')} {run_.get('command', '')} exit {run_.get('exit_code', '-')}" if run_ else "-"
        rows.append([i.env_file, i.client_id or "-", (i.secret_expires or "-")[:10], last])
    _table(rows, out)
    for problem in found.problems:
        out.warn(problem)


def register(app: typer.Typer) -> None:
    app.command("status", cls=GroupedCommand)(status)
