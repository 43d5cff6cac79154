"""`cypht-azure log`: the last entries of the audit log."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cypht_azure.cli.common import Common, JsonOpt, Output, run
from cypht_azure.cli.help import GroupedCommand


def log(
    count: Annotated[int, typer.Option("--count", "-n", metavar="N", min=1,
                                       help="How many entries to show, newest last.")] = 20,
    json: JsonOpt = False,
) -> None:
    """Show the last runs that changed or tried to change something: time, command, app, secret IDs added
    and removed, deploy hooks, exit code. Never a secret.

    The log is /var/log/cypht-azure/audit.log for root, $XDG_STATE_HOME/cypht-azure/audit.log otherwise
    (CYPHT_AZURE_LOG_DIR overrides the folder); it is rotated at 1 MiB, keeping three older files.

    Example: cypht-azure log -n 5
    """
    common = Common(json=json)
    out = Output(common)

    def body() -> Any:
        from cypht_azure.operations.unattended import audit, toolfiles

        return toolfiles.log_dir() / audit.LOG_NAME, audit.read(count)

    path, entries = run(common, out, body)
    if json:
        out.document({"log_file": str(path), "entries": entries})
        return
    if not entries:
        out.note(f"No entries in {path}.")
        return
    for entry in entries:
        out.note(line(entry))


def line(entry: dict[str, Any]) -> str:
    parts = [entry.get("time", "?"), entry.get("command", "?"), f"exit {entry.get('exit_code', '?')}"]
    if entry.get("app"):
        parts.append(f"app {entry['app']}")
    if entry.get("env_file"):
        parts.append(entry["env_file"])
    if entry.get("added"):
        parts.append("added " + ",".join(entry["added"]))
    if entry.get("removed"):
        parts.append("removed " + ",".join(entry["removed"]))
    hooks = entry.get("hooks") or []
    if hooks:
        parts.append("hooks " + ", ".join(f"{h.get('name')}={'ok' if h.get('ok') else 'FAILED'}" for h in hooks))
    if entry.get("error"):
        parts.append(f"error: {entry['error']}")
    return "  ".join(str(p) for p in parts)


def register(app: typer.Typer) -> None:
    app.command("log", cls=GroupedCommand)(log)
