"""`provision`: from nothing (or from drift) to an app registration and a `.env` Cypht can use.

Order of work, chosen so that a secret is never created that cannot be stored:
1. validate every input (no network);
2. parse `.env`, check it can be written, lock it;
3. sign in; find or create the registration; repair drift in one PATCH;
4. only if `.env` does not already hold a live secret of this app: add one and write it
   into `.env` at once (atomically); if the write fails, remove the new secret again;
5. check Entra accepts the secret (it takes a few seconds to replicate).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cypht_azure import cypht, envfile
from cypht_azure.durations import describe
from cypht_azure.errors import AppNotFound, InputError, OperationFailed
from cypht_azure.operations import envstate
from cypht_azure.operations.checkpoints import checkpoint
from cypht_azure.operations.secrets import key_id_of, make_room_for_secret, new_secret_name, removable
from cypht_azure.operations.session import Session, iso, parse_time, utcnow, verify_secret
from cypht_azure.secret import Secret

DEFAULT_SECRET_LIFETIME = dt.timedelta(days=365)
MAX_SECRET_LIFETIME = dt.timedelta(days=730)


@dataclass
class ProvisionRequest:
    url: str | None
    env_file: Path
    redirect_uris: list[str] = field(default_factory=list)
    providers: list[str] = field(default_factory=lambda: list(cypht.PROVIDERS))
    name: str | None = None
    audience: str = cypht.DEFAULT_AUDIENCE
    secret_lifetime: dt.timedelta = DEFAULT_SECRET_LIFETIME
    app_id: str | None = None
    dry_run: bool = False
    verify: bool = True
    verify_timeout: float = 120.0


@dataclass
class Plan:
    """Validated inputs: everything decided before the first Graph call."""

    request: ProvisionRequest
    redirect_uris: list[str]
    display_name: str
    unique_name: str
    body: dict[str, Any]

    @property
    def primary_uri(self) -> str:
        return self.redirect_uris[0]


@dataclass
class ProvisionResult:
    client_id: str
    object_id: str
    tenant_id: str
    display_name: str
    unique_name: str | None
    sign_in_audience: str
    redirect_uris: list[str]
    secret_key_id: str | None
    secret_expires: str | None
    env_file: str
    keys_written: list[str]
    changed: bool
    created: bool
    updated_fields: list[str]
    secret_created: bool
    secret_verified: bool | None
    dry_run: bool
    actions: list[str]
    removed_key_ids: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.dry_run and self.created:  # no IDs yet: null, with `created` saying it would be made
            data["client_id"] = data["object_id"] = None
        return data


def prepare(req: ProvisionRequest) -> Plan:
    """Validate every input; raise InputError naming the problem and the fix. No I/O."""
    try:
        audience = cypht.parse_audience(req.audience)
        if req.redirect_uris:
            uris = [u.strip() for u in req.redirect_uris]
        elif req.url:
            uris = [cypht.redirect_uri_for(req.url)]
        else:
            raise cypht.InvalidInput("Give Cypht's public base URL with --url (e.g. https://mail.example.com).")
        cypht.validate_redirect_uris(uris, audience)
        if len(set(uris)) != len(uris):
            raise cypht.InvalidInput("The same redirect URI is given twice.")
        display_name = req.name or cypht.default_display_name(uris[0])
        cypht.validate_display_name(display_name, audience)
    except cypht.InvalidInput as exc:
        raise InputError(str(exc)) from None
    if req.secret_lifetime <= dt.timedelta(0):
        raise InputError("--secret-lifetime must be positive.")
    if req.secret_lifetime > MAX_SECRET_LIFETIME:
        raise InputError(
            f"--secret-lifetime {describe(req.secret_lifetime)} is longer than Entra allows (2 years, 730d)."
        )
    if req.app_id is not None and not _looks_like_guid(req.app_id):
        raise InputError(f"--app-id {req.app_id!r} is not an application (client) ID; it looks like "
                         "00000000-0000-0000-0000-000000000000 (Entra admin center > App registrations).")
    unique_name = cypht.unique_name_for(uris[0])
    body = cypht.desired_registration(
        display_name=display_name, unique_name=unique_name, audience=audience, redirect_uris=uris,
        url=req.url or uris[0],
    )
    return Plan(req, uris, display_name, unique_name, body)


def _looks_like_guid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


def registration_patch(app: dict[str, Any], plan: Plan) -> dict[str, Any]:
    """The smallest PATCH that brings an existing registration to what Cypht needs.

    Collections are replaced wholesale by Graph, so redirect URIs and permissions are merged
    with what is there: URIs and permissions that others added are kept.
    """
    audience = plan.body["signInAudience"]
    patch: dict[str, Any] = {}
    if app.get("signInAudience") != audience:
        patch["signInAudience"] = audience
    api = dict(app.get("api") or {})
    if cypht.includes_personal(str(audience)) and api.get("requestedAccessTokenVersion") != 2:
        api["requestedAccessTokenVersion"] = 2
        patch["api"] = api
    web = dict(app.get("web") or {})
    current_uris = list(web.get("redirectUris") or [])
    missing = [u for u in plan.redirect_uris if u not in current_uris]
    merged_uris = current_uris + missing
    for uri in merged_uris:
        problems = cypht.redirect_uri_problems(uri, str(audience))
        if problems and uri not in plan.redirect_uris:
            raise InputError(
                f"The registration already has the redirect URI {uri!r}, which is invalid for the audience "
                f"{audience}: " + "; ".join(problems) + ".",
                hint="Remove it in the Entra admin center (App registrations > Authentication) or choose "
                     "another --audience.",
            )
    if missing:
        patch["web"] = {k: v for k, v in web.items() if k in ("homePageUrl", "logoutUrl", "implicitGrantSettings")}
        patch["web"]["redirectUris"] = merged_uris
    access = cypht.merge_required_access(list(app.get("requiredResourceAccess") or []))
    if access is not None:
        patch["requiredResourceAccess"] = access
    tags = list(app.get("tags") or [])
    if cypht.TAG not in tags:
        patch["tags"] = [*tags, cypht.TAG]
    if plan.request.name and app.get("displayName") != plan.display_name:
        patch["displayName"] = plan.display_name
    return patch


async def provision(session: Session, plan: Plan, doc: envfile.EnvDocument, env_path: Path) -> ProvisionResult:
    req = plan.request
    graph = session.graph
    actions: list[str] = []
    states = envstate.read_providers(doc, req.providers)
    env_client_id = envstate.named_client_id(states, env_path)
    created = False
    updated: list[str] = []

    target = req.app_id or env_client_id
    if target:
        app = await graph.get_application(app_id=target)
        if app is None:
            source = "--app-id" if req.app_id else str(env_path)
            raise AppNotFound(
                f"The app registration {target} named by {source} does not exist in tenant {session.tenant_id}.",
                hint=f"If it was deleted, restore it within 30 days with `cypht-azure restore --app-id {target}`. "
                     "It may also belong to another tenant (check --tenant). To create a new registration "
                     f"instead, remove the *_CLIENT_ID lines from {env_path} and run again.",
            )
        tags = app.get("tags") or []
        if not req.app_id and cypht.TAG not in tags:
            raise InputError(
                f"{env_path} names client ID {target} ({app.get('displayName')!r}), an app registration "
                "that cypht-azure did not create.",
                hint=f"To let cypht-azure manage it, run again with --app-id {target}. To create a new "
                     f"registration instead, remove the *_CLIENT_ID lines from {env_path}.",
            )
        if req.app_id and env_client_id and env_client_id != req.app_id:
            actions.append(f"{env_path} names client ID {env_client_id}; it will be switched to {req.app_id}.")
        elif env_client_id:
            actions.append(f"{env_path} names client ID {env_client_id}: using that registration.")
        patch = registration_patch(app, plan)
        if patch:
            updated = sorted(patch)
            actions.append(f"Update the registration: {', '.join(updated)}.")
            if not req.dry_run:
                await graph.update_application(app["id"], patch)
                _apply(app, patch)
    elif req.dry_run:
        existing = await graph.get_application(unique_name=plan.unique_name)
        if existing is None:
            created = True
            app = {"id": "(new)", "appId": "(new)", "passwordCredentials": [], **plan.body}
            actions.append(f"Create the app registration {plan.display_name!r} (uniqueName {plan.unique_name}).")
        else:
            app = existing
            actions.append(f"Update the existing registration {existing.get('appId')} for this URL.")
    else:
        new_app = await graph.upsert_application(plan.unique_name, plan.body)
        if new_app is not None:
            created, app = True, new_app
            actions.append(f"Created the app registration {plan.display_name!r} ({app.get('appId')}).")
        else:
            found = await graph.get_application(unique_name=plan.unique_name)
            if found is None:
                raise OperationFailed("Graph updated the registration but it cannot be read back; run again.")
            app = found
            updated = sorted(plan.body)
            actions.append(f"A registration for this URL already existed ({app.get('appId')}); it was updated.")

    checkpoint("app-ready")
    client_id = str(app["appId"])
    now = utcnow()
    credentials = list(app.get("passwordCredentials") or [])
    alive = {str(c.get("keyId", "")).lower(): c for c in credentials
             if (ends := parse_time(c.get("endDateTime"))) is not None and ends > now}

    held = next((s for s in states.values()
                 if s.client_id == client_id and s.secret and s.secret_id in alive), None)
    secret: Secret | None = held.secret if held else None
    key_id: str | None = held.secret_id if held else None
    expires: str | None = str(alive[key_id].get("endDateTime")) if held and key_id else None
    secret_created = False
    removed: list[str] = []
    if held:
        actions.append(f"Keep the client secret {key_id} that {env_path} holds (expires {expires}).")

    endpoints = session.cypht_endpoints({**app, "signInAudience": plan.body["signInAudience"]})
    all_held_ids = envstate.held_secret_ids(doc, client_id)
    keys_written: list[str] = []
    if secret is None:
        end = iso(now + req.secret_lifetime)
        verb = "Add" if req.dry_run else "Added"
        actions.append(f"{verb} a client secret valid for {describe(req.secret_lifetime)} for {env_path}.")
        if req.dry_run:
            keys_written = sorted(envstate.updates_for(
                doc, req.providers, client_id=client_id, secret=Secret(""), key_id="", redirect_uri=plan.primary_uri,
                endpoints=endpoints,
            ))
        else:
            envstate.recheck(env_path)  # the file may have changed while Graph was called
            removed = await make_room_for_secret(session, app, env_path, keep=all_held_ids)
            for key in removed:
                actions.append(f"Removed the unused cypht-azure client secret {key} to make room.")
            created_pw = await graph.add_password(
                app["id"], display_name=new_secret_name(now, env_path), end=end, fresh_object=created,
            )
            secret = Secret(str(created_pw.pop("secretText")))
            key_id = str(created_pw["keyId"]).lower()
            expires = str(created_pw.get("endDateTime") or end)
            secret_created = True
            checkpoint("secret-added")
    if secret is not None and key_id is not None:
        updates = envstate.updates_for(
            doc, req.providers, client_id=client_id, secret=secret, key_id=key_id, redirect_uri=plan.primary_uri,
            endpoints=endpoints,
        )
        keys_written = envstate.changed_keys(doc, updates)
        if keys_written and not req.dry_run:
            try:
                envstate.write_env(env_path, doc.updated(updates, block_comment=envstate.BLOCK_COMMENT).render(),
                                   updates=updates)
            except BaseException:
                if secret_created:
                    # The secret could not be stored: take it back so none is left unrecorded.
                    await graph.remove_password(app["id"], key_id)
                raise
            checkpoint("env-written")
        if keys_written:
            actions.append(f"{'Write' if req.dry_run else 'Wrote'} {', '.join(keys_written)} in {env_path}.")

    if not req.dry_run and key_id is not None:
        # Secrets made for this .env that it does not hold were left by an interrupted run: remove them.
        keep = all_held_ids | {key_id}
        for orphan in removable(list(app.get("passwordCredentials") or []), env_path, keep=keep):
            if await graph.remove_password(app["id"], key_id_of(orphan)):
                removed.append(key_id_of(orphan))
                actions.append(f"Removed the unused cypht-azure client secret {key_id_of(orphan)}.")

    verified: bool | None = None
    if secret_created and req.verify and secret is not None:
        session.progress.step("Checking that Entra accepts the new client secret")
        ok, last = verify_secret(session, client_id, secret, timeout=req.verify_timeout)
        if not ok:
            raise OperationFailed(
                f"The new client secret is stored in {env_path}, but Entra did not accept it within "
                f"{req.verify_timeout:.0f} s ({last}).",
                hint="New secrets usually work within a minute. Check later with "
                     "`cypht-azure status --verify-secret`; running provision again is safe.",
            )
        verified = True

    return ProvisionResult(
        client_id=client_id,
        object_id=str(app["id"]),
        tenant_id=session.tenant_id,
        display_name=str(app.get("displayName") or plan.display_name),
        unique_name=app.get("uniqueName") or plan.unique_name,
        sign_in_audience=str(app.get("signInAudience") or plan.body["signInAudience"]),
        redirect_uris=list((app.get("web") or {}).get("redirectUris") or plan.redirect_uris),
        secret_key_id=key_id,
        secret_expires=expires,
        env_file=str(env_path),
        keys_written=keys_written,
        changed=bool(created or updated or secret_created or keys_written or removed) and not req.dry_run,
        created=created,
        updated_fields=updated,
        secret_created=secret_created,
        secret_verified=verified,
        dry_run=req.dry_run,
        actions=actions,
        removed_key_ids=removed,
    )


def _apply(app: dict[str, Any], patch: dict[str, Any]) -> None:
    app.update(patch)
