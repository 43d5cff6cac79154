"""`deprovision` and `restore`.

    lock .env -> read it -> sign in -> read the registration -> plan_deprovision() -> confirm -> apply()

Deleting is a soft delete (restorable for 30 days) unless --purge. The DELETE is the commit point;
the keys in `.env` go after it: if that step fails, a re-run finds the app already deleted and
finishes the `.env` part, so the command can always be repeated.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from cypht_azure import cypht, envfile
from cypht_azure.errors import AppNotFound, NeedsConfirmation
from cypht_azure.operations.core import envstate
from cypht_azure.operations.core.apply import Context, apply
from cypht_azure.operations.core.apps import Target, fetch_app, find_deleted, require_ours
from cypht_azure.operations.core.secrets import other_installations, owners_for
from cypht_azure.operations.core.session import Session, utcnow
from cypht_azure.operations.core.steps import (
    Applied,
    DeleteRegistration,
    DeleteServicePrincipal,
    Outcome,
    Plan,
    PurgeRegistration,
    RestoreRegistration,
    Step,
    StepRecord,
    WriteEnv,
    changed,
    planned,
)


@dataclass
class DeprovisionRequest:
    env_file: Path
    app_id: str | None = None
    url: str | None = None
    purge: bool = False
    dry_run: bool = False
    yes: bool = False


@dataclass
class DeprovisionResult(Outcome):
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
    notes: list[str] = field(default_factory=list)
    steps: list[StepRecord] = field(default_factory=list)



def owned_keys(doc: envfile.EnvDocument, client_id: str) -> list[str]:
    """The keys cypht-azure wrote for this app: ID, secret, secret ID, redirect URI, and the endpoint keys
    it appended under its comment (endpoint lines the admin had elsewhere in the file stay)."""
    keys: list[str] = []
    managed = envstate.managed_block_keys(doc)
    for provider in envstate.blocks_using(doc, client_id):
        k = cypht.provider_keys(provider)
        keys += [name for name in (k.client_id, k.client_secret, k.secret_id, k.client_uri) if doc.get(name) is not None]
        keys += [k.endpoint(name) for name in cypht.DEFAULT_ENDPOINTS if k.endpoint(name) in managed]
    return keys


def plan_deprovision(request: DeprovisionRequest, doc: envfile.EnvDocument, app: dict[str, Any],
                     already_deleted: bool, now: dt.datetime | None = None) -> Plan:
    """Delete (the commit point), purge if asked, then remove the app's keys from `.env`. Pure."""
    client_id, object_id = str(app["appId"]), str(app["id"])
    steps: list[Step] = []
    notes: list[str] = []
    if already_deleted:
        notes.append(f"The app registration {client_id} is already deleted.")
    else:
        others = other_installations(app, owners_for(doc, request.env_file, client_id), now or utcnow())
        if others:
            notes.append(f"Warning: another .env also holds a live client secret of this registration (made by "
                         f"cypht-azure for {', '.join(others)}: host and a hash of that file's path). The Cypht "
                         "that uses it loses Outlook/Office365 sign-in too.")
        steps.append(DeleteRegistration(object_id, client_id, app.get("displayName"), commit=True))
    # Entra may keep the enterprise application of a deleted registration: delete it by name (a no-op where
    # it went with the registration).
    steps.append(DeleteServicePrincipal(client_id))
    if request.purge:
        steps.append(PurgeRegistration(object_id, client_id))
    keys = owned_keys(doc, client_id)
    if keys:
        # The file goes back to the shape it had: lines cypht-azure appended under its comment go, lines
        # it filled in place (Cypht's template: OUTLOOK_CLIENT_ID= …) stay, empty, under their comment.
        managed = envstate.managed_block_keys(doc)
        steps.append(WriteEnv(str(request.env_file), {k: None if k in managed else "" for k in keys}))
    return Plan("deprovision", tuple(steps), tuple(notes))


async def deprovision(
    session: Session, request: DeprovisionRequest, target: Target, doc: envfile.EnvDocument,
    confirm: Callable[[str], bool] | None, on_record: Callable[[StepRecord], None],
) -> DeprovisionResult:
    app = await fetch_app(session, target)
    already = False
    if app is None:
        deleted = await find_deleted(session, target)  # by client ID, or by the URL's uniqueName
        if deleted is None:
            raise AppNotFound(f"No app registration {target.app_id or target.unique_name} (named by "
                              f"{target.source}) in tenant {session.tenant_id}, not even among deleted ones.")
        app, already = deleted, True
    else:
        require_ours(app, target)
    plan = plan_deprovision(request, doc, app, already)
    applied = Applied(object_id=str(app["id"]), client_id=str(app["appId"]))
    if request.dry_run:
        applied.records = planned(plan)
    else:
        if not request.yes and plan.steps:
            question = "\n".join([*plan.notes, *(f"- {s.summary()}" for s in plan.steps), "Go ahead?"])
            if confirm is None:
                raise NeedsConfirmation(
                    "deprovision deletes the app registration and needs confirmation.",
                    hint="Run it on a terminal to be asked, or pass --yes (see --dry-run for what would go).")
            if not confirm(question):
                raise NeedsConfirmation("Nothing was deleted: not confirmed.")
        await apply(plan, Context(session, doc, request.env_file, applied, on_record=on_record))
    write = plan.of(WriteEnv)
    return DeprovisionResult(
        client_id=str(app["appId"]), object_id=str(app["id"]), display_name=app.get("displayName"),
        tenant_id=session.tenant_id, env_file=str(request.env_file), deleted=applied.deleted,
        purged=applied.purged, already_deleted=already,
        keys_removed=applied.keys_written if not request.dry_run else list(write[0].keys) if write else [],
        dry_run=request.dry_run, notes=list(plan.notes), steps=applied.records,
    )


@dataclass
class RestoreResult:
    client_id: str
    object_id: str
    display_name: str | None
    tenant_id: str
    steps: list[StepRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    redirect_uris: list[str] = field(default_factory=list)  # for the provision command that follows
    dry_run: ClassVar[bool] = False  # restore has no --dry-run

    @property
    def changed(self) -> bool:
        return changed(self.steps)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("notes")
        data["steps"] = [r.to_json() for r in self.steps]
        return data


def plan_restore(deleted: dict[str, Any]) -> Plan:
    return Plan("restore", (RestoreRegistration(str(deleted["id"]), str(deleted["appId"]), deleted.get("displayName"),
                                                commit=True),))


async def restore(session: Session, app_id: str, on_record: Callable[[StepRecord], None]) -> RestoreResult:
    deleted = await find_deleted(session, Target(app_id=app_id))
    if deleted is None:
        active = await session.graph.get_application(app_id=app_id, select=["id", "appId", "displayName", "web"])
        if active is not None:
            return RestoreResult(app_id, str(active["id"]), active.get("displayName"), session.tenant_id,
                                 notes=[f"The app registration {app_id} is already active: nothing to restore."],
                                 redirect_uris=_web_uris(active))
        raise AppNotFound(f"No deleted app registration with client ID {app_id} in tenant {session.tenant_id}.",
                          hint="Deleted registrations can be restored for 30 days; after that they are gone.")
    plan = plan_restore(deleted)
    applied = await apply(plan, Context(session, envfile.parse(""), Path(), Applied(), on_record=on_record))
    restored = applied.restored or {}
    return RestoreResult(str(restored.get("appId") or app_id), str(restored.get("id") or deleted["id"]),
                         restored.get("displayName"), session.tenant_id, applied.records,
                         redirect_uris=_web_uris(restored or deleted))


def _web_uris(app: dict[str, Any]) -> list[str]:
    return [str(u) for u in ((app.get("web") or {}).get("redirectUris") or [])]
