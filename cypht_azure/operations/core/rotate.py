"""`rotate-secret`: replace the client secret with no moment in which Cypht lacks a working one.

    lock .env -> read it -> sign in -> read the registration -> plan_rotate() -> apply()

The plan: (make room under Entra's 2-secret limit) -> add a secret -> wait until the token endpoint
accepts it -> write it into `.env`, every provider block of this app (the commit point: before it
the new secret is removed again on failure or Ctrl-C and `.env` is untouched) -> remove the
superseded secrets. Cypht re-reads `.env` on every request, so the old secret serves until the new
one is in place and already works.

Only secrets the tool made for this `.env`, and that `.env` no longer holds, are ever removed;
others are listed. A secret left behind by a run killed between "add" and "write" is such a
secret, so the next run cleans it up.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cypht_azure import cypht, envfile
from cypht_azure.durations import describe, time_left
from cypht_azure.errors import DeployHookFailed, InputError
from cypht_azure.operations.core import envstate
from cypht_azure.operations.core.apply import Context, apply, rehearse_deploy_hooks
from cypht_azure.operations.core.apps import Target, fetch_app, not_found, require_ours
from cypht_azure.operations.core.provision import copy_notes, installation_value, same_value
from cypht_azure.operations.core.secrets import (
    LEFT_BY_INTERRUPTED_RUN,
    LEFT_BY_REPLACED_FILE,
    MAKES_ROOM,
    Owners,
    is_tool_secret,
    key_id_of,
    new_secret_name,
    oldest_first,
    owners_for,
    room_for_secret,
    when_due,
)
from cypht_azure.operations.core.session import Session, iso, parse_time, utcnow
from cypht_azure.operations.core.steps import (
    AddSecret,
    Applied,
    EnvValue,
    Fill,
    Outcome,
    Plan,
    RemoveSecret,
    RunDeployHooks,
    Step,
    StepRecord,
    VerifySecret,
    WriteEnv,
    planned,
)
from cypht_azure.operations.unattended import hooks
from cypht_azure.secret import Secret


@dataclass
class RotateRequest:
    env_file: Path
    app_id: str | None = None
    url: str | None = None
    if_expiring_within: dt.timedelta | None = None
    keep_previous: bool = False
    switch_app: bool = False  # --switch-app: --app-id may name another app than .env does
    secret_lifetime: dt.timedelta = dt.timedelta(days=365)
    dry_run: bool = False
    verify_timeout: float = 120.0
    when_due: bool = False  # rotate only with less than a third of the lifetime left (or unknown/expired)
    deploy_hooks: tuple[hooks.Hook, ...] = ()
    hooks_timeout: float = hooks.DEFAULT_TIMEOUT
    run_hooks_in_dry_run: bool = False
    skip_hooks: bool = False  # --skip-deploy-hooks: an earlier run's failed hooks are given up
    # CYPHT_AZURE_* settings an older version wrote into .env, removed now that the record holds them
    retire_keys: frozenset[str] = frozenset()


@dataclass
class RotateResult(Outcome):
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
    notes: list[str] = field(default_factory=list)
    steps: list[StepRecord] = field(default_factory=list)
    deploy_hooks: list[dict[str, Any]] = field(default_factory=list)
    deploy_hooks_error: str | None = None
    # After the commit point, what went wrong without undoing anything (exit 1; see docs/guarantees.md).
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Current:
    """What `.env` holds now: the blocks of this app and the secret that decides when to rotate."""

    providers: list[str]
    held: set[str]
    key_id: str | None
    end: dt.datetime | None
    gone: bool  # a held secret ID is no longer on the app
    start: dt.datetime | None = None


def current_state(doc: envfile.EnvDocument, app: dict[str, Any]) -> Current:
    client_id = str(app["appId"])
    by_id = {key_id_of(c): c for c in app.get("passwordCredentials") or []}
    # The app was named by --app-id/--url and `.env` has no block for it yet: fill both.
    providers = envstate.blocks_using(doc, client_id) or ["outlook", "office365"]
    held = envstate.held_secret_ids(doc, client_id)
    # The held secret that expires first decides; one that is gone from the app forces a rotation.
    held_creds = sorted((by_id[k] for k in held if k in by_id), key=lambda c: c.get("endDateTime") or "")
    current = held_creds[0] if held_creds and len(held_creds) == len(held) else None
    key_id = key_id_of(current) if current else next(iter(sorted(held)), None)
    end = parse_time(current.get("endDateTime")) if current else None
    start = parse_time(current.get("startDateTime")) if current else None
    return Current(providers, held, key_id, end, bool(held) and current is None, start)


def check_switch(request: RotateRequest, doc: envfile.EnvDocument) -> str | None:
    """The client ID `.env` names when --app-id names another one (then --switch-app is required)."""
    if not request.app_id:
        return None
    named = envstate.named_client_id(envstate.read_providers(doc, list(cypht.PROVIDERS)), request.env_file)
    if not named or named.lower() == request.app_id.strip().lower():
        return None
    if not request.switch_app:
        raise InputError(
            f"{request.env_file} names client ID {named}, but --app-id names {request.app_id}: rotating would "
            f"switch .env to another app registration.",
            hint=f"To switch .env to {request.app_id}, add --switch-app (see the plan with --dry-run first). "
                 f"To rotate the secret of {named}, leave out --app-id.",
        )
    return named


def plan_rotate(request: RotateRequest, doc: envfile.EnvDocument, app: dict[str, Any], now: dt.datetime, *,
                endpoints: cypht.SignInEndpoints | None = None) -> Plan:
    """The steps of one rotation (or of the cleanup when --if-expiring-within finds it not due). Pure."""
    env_path = request.env_file
    credentials = list(app.get("passwordCredentials") or [])
    cur = current_state(doc, app)
    owners = owners_for(doc, env_path, str(app["appId"]))
    notes: list[str] = copy_notes(owners, credentials)
    pending = (doc.get(envstate.DEPLOY_PENDING) or "").lower()
    if pending and pending in cur.held:
        return plan_hooks_retry(request, credentials, cur, pending, owners)
    if due(request, cur, now) is not None:
        # Not due; but a run that died between "add" and "write" left a secret nobody holds: clean it now.
        orphans = owners.removable(credentials, keep=cur.held)
        return Plan("rotate-secret", tuple(
            RemoveSecret(key_id_of(c), LEFT_BY_INTERRUPTED_RUN) for c in orphans),
            tuple(notes))
    if cur.gone:
        notes.append(f"The secret ID in {env_path} ({cur.key_id}) is not on the app any more; replacing it.")
    room = room_for_secret(app, owners, keep=cur.held)
    steps: list[Step] = [RemoveSecret(k, MAKES_ROOM) for k in room]
    steps.append(AddSecret(new_secret_name(now, env_path, installation=owners.installation, after=cur.key_id),
                           iso(now + request.secret_lifetime), request.secret_lifetime))
    steps.append(VerifySecret(request.verify_timeout))
    values = rotation_values(doc, app, cur.providers, endpoints) | installation_value(doc, owners)
    values.update({k: None for k in sorted(request.retire_keys) if doc.get(k) is not None})
    if request.deploy_hooks:
        values[envstate.DEPLOY_PENDING] = Fill.SECRET_ID  # cleared once the hooks succeed
    steps.append(WriteEnv(str(env_path), values, switch_from=check_switch(request, doc), commit=True))
    superseded = [k for k in superseded_by_rotation(owners, credentials) if k not in room]
    if request.deploy_hooks:
        old = () if request.keep_previous else tuple(superseded)
        steps.append(RunDeployHooks(request.deploy_hooks, request.hooks_timeout, old))
    if request.keep_previous:
        if superseded:
            notes.append(f"Keep the previous secret(s) {', '.join(superseded)} (--keep-previous).")
    else:
        replaced = {key_id_of(c) for c in owners.replaced(credentials)}
        steps += [RemoveSecret(k, LEFT_BY_REPLACED_FILE if k in replaced else "superseded: .env no longer holds it")
                  for k in superseded]
    foreign = foreign_ids(owners, credentials)
    if foreign:
        notes.append(f"Leave alone {len(foreign)} secret(s) that cypht-azure did not create for this .env: "
                     f"{', '.join(foreign)}.")
    return Plan("rotate-secret", tuple(steps), tuple(notes))


def superseded_by_rotation(owners: Owners, credentials: list[dict[str, Any]]) -> list[str]:
    """What a rotation removes once `.env` holds the new (verified) secret: the tool's secrets `.env` held
    before (whatever host or path they were made on), those its own interrupted runs left, and those of
    the file it replaced at this path (a redeploy), oldest first."""
    replaced = owners.replaced(credentials)
    return [key_id_of(c) for c in oldest_first(credentials)
            if (key_id_of(c) in owners.held and is_tool_secret(c)) or c in owners.removable(credentials, keep=set())
            or c in replaced]


def foreign_ids(owners: Owners, credentials: list[dict[str, Any]]) -> list[str]:
    return [key_id_of(c) for c in credentials if not owners.mine(c) and key_id_of(c) not in owners.held]


def plan_hooks_retry(request: RotateRequest, credentials: list[dict[str, Any]], cur: Current, pending: str,
                     owners: Owners) -> Plan:
    """An earlier run wrote the secret `.env` holds, but its deploy hooks did not succeed: run them again,
    and only then remove what that secret superseded."""
    by_id = {key_id_of(c): c for c in credentials}
    superseded = tuple(key_id_of(c) for c in owners.removable(credentials, keep=cur.held))
    keep = request.keep_previous
    steps: list[Step] = [RunDeployHooks(request.deploy_hooks, request.hooks_timeout, () if keep else superseded,
                                        key_id=pending, expires=str(by_id[pending].get("endDateTime") or ""),
                                        retry=True, skip=request.skip_hooks)]
    if not keep:
        steps += [RemoveSecret(k, "superseded: .env no longer holds it") for k in superseded]
    notes = ("An earlier run wrote the secret in .env, but its deploy hooks did not succeed; the old secret "
             "was kept until they do.",)
    return Plan("rotate-secret", tuple(steps), notes)


def due(request: RotateRequest, cur: Current, now: dt.datetime) -> str | None:
    """Why the rotation is skipped, else None: with --when-due and/or --if-expiring-within, it rotates
    when either says so; without them, always."""
    reasons = []
    if request.when_due:
        renewal = when_due(cur.start, cur.end, now)
        if renewal.due:
            return None
        reasons.append(f"the secret in {request.env_file} ({cur.key_id}) has {renewal.reason}")
    within = request.if_expiring_within
    if within is not None:
        if cur.end is None or cur.end <= now + within:
            return None
        reasons.append(f"the secret in {request.env_file} ({cur.key_id}) is valid for {time_left(cur.end, now)} "
                       f"more, beyond --if-expiring-within {describe(within)}")
    return "; ".join(reasons) or None


def rotation_values(doc: envfile.EnvDocument, app: dict[str, Any], providers: list[str],
                    endpoints: cypht.SignInEndpoints | None = None) -> dict[str, EnvValue]:
    """ID, secret and secret ID per block; a block the app had no keys in yet gets the rest of what
    Cypht needs, as provision writes it."""
    client_id = str(app["appId"])
    values: dict[str, EnvValue] = {}
    for provider in providers:
        keys = cypht.provider_keys(provider)
        values.update({keys.client_id: client_id, keys.client_secret: Fill.SECRET, keys.secret_id: Fill.SECRET_ID})
    uris = list((app.get("web") or {}).get("redirectUris") or [])
    if uris:
        complete = envstate.updates_for(doc, providers, client_id=client_id, secret=Secret(""), key_id="",
                                        redirect_uri=uris[0], endpoints=endpoints)
        values.update({k: v for k, v in complete.items() if doc.get(k) is None and k not in values})
    return {k: v for k, v in values.items()
            if isinstance(v, Fill) or not same_value(k, doc.get(k), v if isinstance(v, str) else None)}


async def rotate(session: Session, request: RotateRequest, target: Target, doc: envfile.EnvDocument,
                 on_record: Callable[[StepRecord], None]) -> RotateResult:
    app = await fetch_app(session, target)
    if app is None:
        raise not_found(target, session)
    require_ours(app, target)
    now = utcnow()
    plan = plan_rotate(request, doc, app, now, endpoints=session.cypht_endpoints(app))
    applied = Applied(object_id=str(app["id"]), client_id=str(app["appId"]))
    cur = current_state(doc, app)
    hook_error: str | None = None
    if request.dry_run:
        applied.records = planned(plan)
        if request.run_hooks_in_dry_run:
            hook_error = await rehearse_deploy_hooks(plan, request.env_file, str(app["appId"]), cur.key_id,
                                                     iso(cur.end) if cur.end else None, applied)
    else:
        try:
            await apply(plan, Context(session, doc, request.env_file, applied, on_record=on_record))
        except DeployHookFailed as exc:  # after the commit point: report the outcome, exit with code 8
            hook_error = exc.message
    credentials = list(app.get("passwordCredentials") or [])
    write = plan.of(WriteEnv)
    owners = owners_for(doc, request.env_file, str(app["appId"]))
    superseded = superseded_by_rotation(owners, credentials)
    return RotateResult(
        client_id=str(app["appId"]), object_id=str(app["id"]), tenant_id=session.tenant_id,
        env_file=str(request.env_file), new_key_id=applied.key_id, expires=applied.expires,
        previous_key_id=cur.key_id, previous_expires=iso(cur.end) if cur.end else None,
        removed_key_ids=applied.removed, kept_key_ids=superseded if request.keep_previous and write else [],
        foreign_key_ids=foreign_ids(owners, credentials),
        providers=cur.providers,
        keys_written=applied.keys_written if not request.dry_run else list(write[0].keys) if write else [],
        skipped={"reason": reason} if not plan.of(RunDeployHooks) and (reason := due(request, cur, now)) else None,
        secret_verified=applied.verified, dry_run=request.dry_run, notes=list(plan.notes), steps=applied.records,
        deploy_hooks=[r.summary() for r in applied.hook_runs], deploy_hooks_error=hook_error,
        warnings=list(applied.warnings),
    )
