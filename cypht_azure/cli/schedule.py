"""`cypht-azure schedule install|show|remove`: three commands of one group, each with its own help."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cypht_azure.cli.common import Common, EnvFileOpt, JsonOpt, Output, QuietOpt, run
from cypht_azure.cli.help import GroupedCommand, RootGroup

SystemdDirOpt = Annotated[Path | None, typer.Option(
    "--systemd-dir", metavar="DIR",
    help="Write (or look for) the systemd service and timer here. Default: /etc/systemd/system when "
         "systemd runs this machine.",
)]
CronFileOpt = Annotated[Path | None, typer.Option(
    "--cron-file", metavar="PATH",
    help="Use a cron entry in this file instead of systemd. Default, where systemd is absent: "
         "/etc/cron.d/cypht-azure. cron ignores names with a dot, so those are refused.",
)]
CredentialsOpt = Annotated[Path | None, typer.Option(
    "--credentials-file", metavar="PATH",
    help="The sign-in file the admin fills in (created 0600 with commented placeholders, never "
         "overwritten), in a folder only the job's account can enter. Default: "
         "/etc/cypht-azure/credentials/<unit>.credentials ($XDG_CONFIG_HOME/cypht-azure/credentials/ "
         "for other users).",
)]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Show the files it would write or remove; change nothing.")]

group = typer.Typer(
    name="schedule", cls=RootGroup, no_args_is_help=True, rich_markup_mode=None,
    help="Run `rotate-secret --when-due --env-file F` twice a day: a systemd timer, or a cron entry "
         "without systemd. The job runs as the operator who installs it (root), never as the owner of "
         "F.\n\nCommands: install, show, remove. `cypht-azure schedule COMMAND --help` shows each one.",
)


def _run(action: str, env_file: str | None, systemd_dir: Path | None, cron_file: Path | None,
         credentials_file: Path | None, dry_run: bool, json: bool, quiet: bool) -> None:
    common = Common(json=json, quiet=quiet)
    out = Output(common)

    def body() -> Any:
        from cypht_azure.operations.core import envstate
        from cypht_azure.operations.unattended import schedule as op

        given = envstate.resolve_env_path(env_file) if env_file or action != "show" else None
        req = op.ScheduleRequest(given, systemd_dir, cron_file, credentials_file, dry_run)
        if action == "install":
            return [op.install(req)]
        if action == "remove":
            return [op.remove(req)]
        return op.show(req)

    results = run(common, out, body)
    if json:
        out.document({"action": action, "dry_run": dry_run, "schedules": [r.to_json() for r in results]})
        return
    if quiet:
        return
    if action == "show" and not results:
        out.note("No cypht-azure schedule found" + (f" for {env_file}." if env_file else "."))
    for result in results:
        render(result, out, show_content=dry_run or action == "show")


@group.command("install", cls=GroupedCommand)
def install(env_file: EnvFileOpt = None, systemd_dir: SystemdDirOpt = None, cron_file: CronFileOpt = None,
            credentials_file: CredentialsOpt = None, dry_run: DryRunOpt = False, json: JsonOpt = False,
            quiet: QuietOpt = False) -> None:
    """Write a systemd service and timer (or a cron entry) that run `rotate-secret --when-due --env-file F`.

    Twice a day, with a random delay of up to 12 h and catching up after downtime, as the account that
    runs `install` (root): never as the owner of F, the web server's user, which must not hold the
    tenant credential. The sign-in comes from a credentials file that you fill in (mode 0600, in a
    folder only that account can enter). It refuses a set-up the job could not run: a program or
    interpreter it cannot execute, or that another user could change; credentials another user could
    read. Paths are escaped for systemd and cron, or refused (control characters). It prints what to
    run next.

    Examples:

        sudo cypht-azure schedule install --env-file /var/www/cypht/.env

        sudo cypht-azure schedule install --env-file /var/www/cypht/.env --dry-run
    """
    _run("install", env_file, systemd_dir, cron_file, credentials_file, dry_run, json, quiet)


@group.command("show", cls=GroupedCommand)
def show(env_file: EnvFileOpt = None, systemd_dir: SystemdDirOpt = None, cron_file: CronFileOpt = None,
         json: JsonOpt = False, quiet: QuietOpt = False) -> None:
    """Print the installed schedule for F, or every cypht-azure schedule when --env-file is not given.

    Examples:

        cypht-azure schedule show

        cypht-azure schedule show --env-file /var/www/cypht/.env
    """
    _run("show", env_file, systemd_dir, cron_file, None, False, json, quiet)


@group.command("remove", cls=GroupedCommand)
def remove(env_file: EnvFileOpt = None, systemd_dir: SystemdDirOpt = None, cron_file: CronFileOpt = None,
           credentials_file: CredentialsOpt = None, dry_run: DryRunOpt = False, json: JsonOpt = False,
           quiet: QuietOpt = False) -> None:
    """Delete the schedule of F: `systemctl disable --now` the timer (where systemd runs), remove the unit
    files and their copies in /etc/systemd/system, or the cron entry. The credentials file stays.

    Examples:

        sudo cypht-azure schedule remove --env-file /var/www/cypht/.env
    """
    _run("remove", env_file, systemd_dir, cron_file, credentials_file, dry_run, json, quiet)


TITLES = {
    ("install", False): "Installed", ("install", True): "Would install (dry run, nothing written)",
    ("remove", False): "Removed", ("remove", True): "Would remove (dry run, nothing removed)", ("show", False): "",
}


def render(result: Any, out: Output, *, show_content: bool) -> None:
    what = "a systemd timer" if result.kind == "systemd" else "a cron entry"
    if result.command == "show":
        title = f"{what[0].upper()}{what[1:]} for {result.env_file or '(unknown .env)'}"
    else:
        title = f"{TITLES[(result.command, result.dry_run)]} {what} for {result.env_file}"
    if result.run_as:
        title += f", running as {result.run_as}"
    out.note(out.bold(title + (":" if result.files else ": nothing was installed.")))
    for change in result.files:
        mode = f" (mode {change.mode})" if change.mode else ""
        out.note(f"  {change.action:<10} {change.path}{mode}")
        if show_content and change.content:
            for line in change.content.splitlines():
                out.note(f"      | {line}")
    if result.next_steps:
        out.note("Next:")
        for n, step in enumerate(result.next_steps, 1):
            out.note(f"  {n}. {step}")


def register(app: typer.Typer) -> None:
    app.add_typer(group)
