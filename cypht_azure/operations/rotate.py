"""`rotate-secret`: replace the client secret with no moment in which Cypht lacks a working one.

add a new secret -> wait until the token endpoint accepts it -> write it into `.env` (every provider
block of this app, atomically) -> remove the superseded secrets. Cypht re-reads `.env` on every
request, so the old secret serves until the new one is in place and already works.

Only secrets the tool made for this `.env`, and that `.env` no longer holds, are ever removed;
others are listed. A secret left behind by a run killed between "add" and "write" is such a
secret, so the next run cleans it up.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cypht_azure import envfile
from cypht_azure.durations import describe, time_left
from cypht_azure.errors import OperationFailed
from cypht_azure.operations import envstate
from cypht_azure.operations.apps import Target, fetch_app, not_found, require_ours
from cypht_azure.operations.checkpoints import checkpoint
from cypht_azure.operations.secrets import (
    key_id_of,
    made_for,
    make_room_for_secret,
    new_secret_name,
    removable,
)
from cypht_azure.operations.session import Session, iso, parse_time, utcnow, verify_secret
from cypht_azure.secret import Secret


@dataclass
class RotateRequest:
    env_file: Path
    app_id: str | None = None
    url: str | None = None
    if_expiring_within: dt.timedelta | None = None
    keep_previous: bool = False
    secret_lifetime: dt.timedelta = dt.timedelta(days=365)
    dry_run: bool = False
    verify_timeout: float = 120.0


@dataclass
class RotateResult:
    client_id: str
    object_id: str
    tenant_id: str
    env_file: str
    new_key_id: str | None
    expires: str | None
    previous_key_id: str | None
    previous_expires: str | None
    removed_key_ids: list[str]
    kept_key_ids: list[str]
    foreign_key_ids: list[str]
    providers: list[str]
    keys_written: list[str]
    skipped: dict[str, str] | None
    secret_verified: bool | None
    dry_run: bool
    actions: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.new_key_id or self.removed_key_ids) and not self.dry_run

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["changed"] = self.changed
        return data


async def rotate(session: Session, req: RotateRequest, target: Target, doc: envfile.EnvDocument) -> RotateResult:
    graph = session.graph
    env_path = req.env_file
    app = await fetch_app(session, target)
    if app is None:
        raise not_found(target, session)
    require_ours(app, target)
    client_id, object_id = str(app["appId"]), str(app["id"])
    now = utcnow()
    credentials = list(app.get("passwordCredentials") or [])
    by_id = {key_id_of(c): c for c in credentials}
    providers = envstate.blocks_using(doc, client_id) or envstate.blocks_using(doc, client_id.lower())
    if not providers:
        # The app was named by --app-id/--url and `.env` has no block for it yet: fill both.
        providers = ["outlook", "office365"]
    held = envstate.held_secret_ids(doc, client_id)
    # The held secret that expires first decides; one that is gone from the app forces a rotation.
    held_creds = sorted((by_id[k] for k in held if k in by_id), key=lambda c: c.get("endDateTime") or "")
    current = held_creds[0] if held_creds and len(held_creds) == len(held) else None
    current_id = key_id_of(current) if current else next(iter(sorted(held)), None)
    current_end = parse_time(current.get("endDateTime")) if current else None
    actions: list[str] = []
    result = RotateResult(
        client_id=client_id, object_id=object_id, tenant_id=session.tenant_id, env_file=str(env_path),
        new_key_id=None, expires=None, previous_key_id=current_id,
        previous_expires=iso(current_end) if current_end else None, removed_key_ids=[], kept_key_ids=[],
        foreign_key_ids=[key_id_of(c) for c in credentials if not made_for(c, env_path)],
        providers=providers, keys_written=[], skipped=None, secret_verified=None, dry_run=req.dry_run,
        actions=actions,
    )

    if req.if_expiring_within is not None and current_end is not None and current_end > now + req.if_expiring_within:
        result.skipped = {
            "reason": f"the secret in {env_path} ({current_id}) is valid for {time_left(current_end, now)} more, beyond "
                      f"--if-expiring-within {describe(req.if_expiring_within)}",
        }
        # A run that died between "add" and "write" left a secret nobody holds: clean it now.
        orphans = [key_id_of(c) for c in removable(credentials, env_path, keep=held)]
        if orphans:
            actions.append(f"Remove {len(orphans)} unused cypht-azure secret(s) left by an interrupted run.")
            if not req.dry_run:
                for key in orphans:
                    if await graph.remove_password(object_id, key):
                        result.removed_key_ids.append(key)
        return result

    if held and current is None:
        actions.append(f"The secret ID in {env_path} ({current_id}) is not on the app any more; replacing it.")
    end = iso(now + req.secret_lifetime)
    actions.append(f"Add a client secret valid for {describe(req.secret_lifetime)}, check it works, "
                   f"write it to {', '.join(p.upper() for p in providers)} in {env_path}.")
    if req.dry_run:
        superseded = [key_id_of(c) for c in removable(credentials, env_path, keep=set())]
        if superseded and not req.keep_previous:
            actions.append(f"Then remove the superseded secrets: {', '.join(superseded)}.")
        return result

    envstate.recheck(env_path)  # the file may have changed while Graph was called
    room = await make_room_for_secret(session, app, env_path, keep=held)
    result.removed_key_ids.extend(room)
    created = await graph.add_password(object_id, display_name=new_secret_name(now, env_path), end=end)
    secret = Secret(str(created.pop("secretText")))
    new_id = key_id_of(created)
    result.new_key_id, result.expires = new_id, str(created.get("endDateTime") or end)
    checkpoint("secret-added")

    session.progress.step("Waiting until Entra accepts the new client secret")
    ok, last = verify_secret(session, client_id, secret, timeout=req.verify_timeout)
    if not ok:
        # Cypht keeps the old secret: take the new one back rather than write one that does not work.
        await graph.remove_password(object_id, new_id)
        raise OperationFailed(
            f"Entra did not accept the new client secret within {req.verify_timeout:.0f} s ({last}). "
            f"Nothing was changed in {env_path}; the new secret was removed again.",
            hint="Run rotate-secret again later, or with a longer --verify-timeout.",
        )
    result.secret_verified = True
    checkpoint("secret-verified")

    updates = envstate.secret_updates(providers, client_id=client_id, secret=secret, key_id=new_id)
    uris = list((app.get("web") or {}).get("redirectUris") or [])
    if uris:
        # A block the app had no keys in yet gets the rest of what Cypht needs, as provision writes it.
        complete = envstate.updates_for(doc, providers, client_id=client_id, secret=secret, key_id=new_id,
                                        redirect_uri=uris[0],
                                        endpoints=session.cypht_endpoints(app))
        updates.update({k: v for k, v in complete.items() if doc.get(k) is None})
    result.keys_written = envstate.changed_keys(doc, updates)
    new_doc = doc.updated(updates, block_comment=envstate.BLOCK_COMMENT)
    try:
        envstate.write_env(env_path, new_doc.render(), updates=updates)
    except BaseException:
        await graph.remove_password(object_id, new_id)
        raise
    checkpoint("env-written")

    still_held = envstate.held_secret_ids(new_doc, client_id)
    superseded = [key_id_of(c) for c in removable(credentials, env_path, keep=still_held | {new_id})]
    if req.keep_previous:
        result.kept_key_ids = superseded
        if superseded:
            actions.append(f"Kept the previous secret(s) {', '.join(superseded)} (--keep-previous).")
    else:
        for key in superseded:
            if await graph.remove_password(object_id, key):
                result.removed_key_ids.append(key)
    if result.foreign_key_ids:
        actions.append(f"Left alone {len(result.foreign_key_ids)} secret(s) that cypht-azure did not create "
                       f"for this .env: {', '.join(result.foreign_key_ids)}.")
    return result
