"""`cypht-azure schedule install|show|remove`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from cypht_azure.cli.common import Common, EnvFileOpt, JsonOpt, Output, QuietOpt, run
from cypht_azure.cli.help import GroupedCommand


class Action(str, Enum):
    install = "install"
    show = "show"
    remove = "remove"


def schedule(
    action: Annotated[Action, typer.Argument(help="install, show or remove.", show_default=False)],
    env_file: EnvFileOpt = None,
    systemd_dir: Annotated[Path | None, typer.Option(
        "--systemd-dir", metavar="DIR",
        help="Write (or look for) the systemd service and timer here. Default: /etc/systemd/system when "
             "systemd runs this machine.",
    )] = None,
    cron_file: Annotated[Path | None, typer.Option(
        "--cron-file", metavar="PATH",
        help="Use a cron entry in this file instead of systemd. Default, where systemd is absent: "
             "/etc/cron.d/cypht-azure.",
    )] = None,
    credentials_file: Annotated[Path | None, typer.Option(
        "--credentials-file", metavar="PATH",
        help="The sign-in file the admin fills in (created 0600 with commented placeholders, never "
             "overwritten). Default: /etc/cypht-azure/<unit>.credentials ($XDG_CONFIG_HOME/cypht-azure/ "
             "for other users).",
    )] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the files it would write or remove; change nothing.")] = False,
    json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run `rotate-secret --when-due --env-file F` twice a day: a systemd timer, or a cron entry without systemd.

    install writes a service and a timer (random delay up to 12 h, catches up after downtime) running as
    the owner of F, and a credentials file for the sign-in that you fill in; it prints what to run next.
    show prints what is installed (for F, or every cypht-azure schedule); remove deletes it (the
    credentials file stays).

    Examples:

        cypht-azure schedule install --env-file /var/www/cypht/.env

        cypht-azure schedule show

        cypht-azure schedule remove --env-file /var/www/cypht/.env
    """
    common = Common(json=json, quiet=quiet)
    out = Output(common)

    def body() -> Any:
        from cypht_azure.operations.core import envstate
        from cypht_azure.operations.unattended import schedule as op

        given = envstate.resolve_env_path(env_file) if env_file or action != Action.show else None
        req = op.ScheduleRequest(given, systemd_dir, cron_file, credentials_file, dry_run)
        if action == Action.install:
            return [op.install(req)]
        if action == Action.remove:
            return [op.remove(req)]
        return op.show(req)

    results = run(common, out, body)
    if json:
        out.document({"action": action.value, "dry_run": dry_run, "schedules": [r.to_json() for r in results]})
        return
    if quiet:
        return
    if action == Action.show and not results:
        out.note("No cypht-azure schedule found" + (f" for {env_file}." if env_file else "."))
    for result in results:
        render(result, out, show_content=dry_run or action == Action.show)


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
    app.command("schedule", cls=GroupedCommand)(schedule)
