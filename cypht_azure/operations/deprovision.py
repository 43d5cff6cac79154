"""`deprovision` and `restore`.

Deleting is a soft delete (restorable for 30 days) unless --purge. The app goes first, then the
keys in `.env`: if the second step fails, a re-run finds the app already deleted and finishes the
`.env` part, so the command can always be repeated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cypht_azure import cypht, envfile
from cypht_azure.errors import AppNotFound, NeedsConfirmation
from cypht_azure.operations import envstate
from cypht_azure.operations.apps import Target, fetch_app, require_ours
from cypht_azure.operations.session import Session


@dataclass
class DeprovisionRequest:
    env_file: Path
    app_id: str | None = None
    url: str | None = None
    purge: bool = False
    dry_run: bool = False
    yes: bool = False


@dataclass
class DeprovisionResult:
    client_id: str | None
    object_id: str | None
    display_name: str | None
    tenant_id: str
    env_file: str
    deleted: bool
    purged: bool
    already_deleted: bool
    keys_removed: list[str]
    dry_run: bool
    actions: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return (self.deleted or self.purged or bool(self.keys_removed)) and not self.dry_run

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["changed"] = self.changed
        return data


def owned_keys(doc: envfile.EnvDocument, client_id: str) -> list[str]:
    """The keys cypht-azure wrote for this app: ID, secret, secret ID, redirect URI (endpoints stay)."""
    keys: list[str] = []
    for provider in envstate.blocks_using(doc, client_id):
        k = cypht.provider_keys(provider)
        keys += [name for name in (k.client_id, k.client_secret, k.secret_id, k.client_uri) if doc.get(name) is not None]
    return keys


async def deprovision(
    session: Session, req: DeprovisionRequest, target: Target, doc: envfile.EnvDocument,
    confirm: Callable[[str], bool] | None,
) -> DeprovisionResult:
    graph = session.graph
    app = await fetch_app(session, target)
    already = False
    if app is None:
        deleted = []
        if target.app_id:
            deleted = await graph.list_deleted_applications(
                filter=f"appId eq '{target.app_id}'", select=["id", "appId", "displayName", "deletedDateTime"])
        if not deleted:
            raise AppNotFound(f"No app registration {target.app_id or target.unique_name} (named by "
                              f"{target.source}) in tenant {session.tenant_id}, not even among deleted ones.")
        app, already = deleted[0], True
    else:
        require_ours(app, target)
    client_id, object_id = str(app["appId"]), str(app["id"])
    keys = owned_keys(doc, client_id)
    result = DeprovisionResult(client_id, object_id, app.get("displayName"), session.tenant_id, str(req.env_file),
                               False, False, already, [], req.dry_run)
    if already:
        result.actions.append(f"The app registration {client_id} is already deleted.")
    else:
        result.actions.append(
            f"{'Permanently delete' if req.purge else 'Delete (restorable for 30 days)'} the app registration "
            f"{app.get('displayName')!r} ({client_id}).")
    if req.purge and already:
        result.actions.append("Permanently delete it from Deleted applications.")
    if keys:
        result.actions.append(f"Remove {', '.join(keys)} from {req.env_file}.")
    if req.dry_run:
        return result
    if not req.yes:
        question = "\n".join(result.actions) + "\nGo ahead?"
        if confirm is None:
            raise NeedsConfirmation(
                "deprovision deletes the app registration and needs confirmation.",
                hint="Run it on a terminal to be asked, or pass --yes (see --dry-run for what would go).")
        if not confirm(question):
            raise NeedsConfirmation("Nothing was deleted: not confirmed.")
    if not already:
        await graph.delete_application(object_id)
        result.deleted = True
    if req.purge:
        await graph.purge_deleted(object_id, fresh_object=True)  # the deleted item may lag the delete
        result.purged = True
    if keys:
        removal: dict[str, str | None] = dict.fromkeys(keys)
        envstate.write_env(req.env_file, doc.updated(removal).render(), updates=removal, block_comment=None)
        result.keys_removed = keys
    return result


@dataclass
class RestoreResult:
    client_id: str
    object_id: str
    display_name: str | None
    tenant_id: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def restore(session: Session, app_id: str) -> RestoreResult:
    deleted = await session.graph.list_deleted_applications(
        filter=f"appId eq '{app_id}'", select=["id", "appId", "displayName", "deletedDateTime"])
    if not deleted:
        raise AppNotFound(f"No deleted app registration with client ID {app_id} in tenant {session.tenant_id}.",
                          hint="Deleted registrations can be restored for 30 days; after that they are gone.")
    restored = await session.graph.restore_deleted(str(deleted[0]["id"]))
    return RestoreResult(str(restored.get("appId") or app_id), str(restored.get("id") or deleted[0]["id"]),
                         restored.get("displayName"), session.tenant_id)
