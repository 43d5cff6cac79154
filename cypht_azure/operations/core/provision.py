"""`provision`: from nothing (or from drift) to an app registration and a `.env` Cypht can use.

    lock .env -> read it -> sign in -> read the registration (by --app-id, the client ID in .env,
    or the uniqueName derived from the URL) -> plan_provision() -> apply()

When nothing names an app (`creates_first`), the read is skipped: the plan is the one for "no
registration yet", and its create (POST /applications with the uniqueName) is refused by Graph, changing
nothing, if a registration holds that uniqueName; the run then reads it and plans again as above.

The plan, in order: create the registration or merge-patch its drift; only if `.env` does not
already hold a live secret of this app: make room under Entra's 2-secret limit and add a secret;
write `.env` (the commit point: before it a new secret is removed again on failure or Ctrl-C);
remove secrets an interrupted run left for this `.env`; check Entra accepts the new secret.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cypht_azure import cypht, envfile, rehearsal
from cypht_azure.durations import describe
from cypht_azure.errors import AppNotFound, DeployHookFailed, InputError, OperationFailed
from cypht_azure.operations.core import envstate
from cypht_azure.operations.core.apply import Context, RegistrationTaken, apply, rehearse_deploy_hooks
from cypht_azure.operations.core.apps import require_guid
from cypht_azure.operations.core.installations import (
    Shared,
    confirm_url_change,
    own_registration,
    shared_note,
    shared_registration,
    url_change_notes,
    url_changes,
)
from cypht_azure.operations.core.secrets import (
    INSTALLATION_KEY,
    LEFT_BY_INTERRUPTED_RUN,
    LEFT_BY_REPLACED_FILE,
    MAKES_ROOM,
    Owners,
    key_id_of,
    new_secret_name,
    owners_for,
    room_for_secret,
)
from cypht_azure.operations.core.session import Session, iso, parse_time, utcnow
from cypht_azure.operations.core.steps import (
    AddSecret,
    Applied,
    CreateRegistration,
    CreateServicePrincipal,
    EnvValue,
    Fill,
    Outcome,
    PatchRegistration,
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
    deploy_hooks: tuple[hooks.Hook, ...] = ()
    hooks_timeout: float = hooks.DEFAULT_TIMEOUT
    skip_hooks: bool = False  # --skip-deploy-hooks: an earlier run's failed hooks are given up
    run_hooks_in_dry_run: bool = False
    # CYPHT_AZURE_* settings an older version wrote into .env, removed now that the record holds them
    retire_keys: frozenset[str] = frozenset()
    verify_timeout: float = 120.0
    emulator_endpoints: bool = False  # rehearsal: write the emulator's sign-in URLs into the endpoint keys
    emulator_url: str | None = None  # the emulator as Cypht reaches it (default: as cypht-azure does)
    # Redirect URIs to drop from the registration, e.g. the `https://host/?page=home` Cypht's docs
    # suggested, which Entra refuses for audiences with personal accounts.
    remove_redirect_uris: list[str] = field(default_factory=list)
    yes: bool = False  # --yes: change the URL of an existing installation without asking
    # Asks on a terminal before a confirmed change (a new URL); None without one: such a run exits 7.
    confirm: Callable[[str], bool] | None = field(default=None, repr=False, compare=False)


@dataclass
class Desired:
    """Validated inputs: the registration Cypht needs, decided before the first Graph call."""

    request: ProvisionRequest
    redirect_uris: list[str]
    display_name: str
    unique_name: str
    body: dict[str, Any]

    @property
    def primary_uri(self) -> str:
        return self.redirect_uris[0]


def prepare(req: ProvisionRequest) -> Desired:
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
        if req.url and req.redirect_uris and (own := cypht.redirect_uri_for(req.url)) not in uris:
            raise cypht.InvalidInput(
                f"--url {cypht.shown(req.url)} means the redirect URI {own}, which is not among --redirect-uri "
                f"{', '.join(uris)}: the registration would not serve the URL you named. Add --redirect-uri "
                f"{own}, or leave out --url (the first --redirect-uri is what *_CLIENT_URI gets).")
        both = sorted(set(uris) & {u.strip() for u in req.remove_redirect_uris})
        if both:
            raise cypht.InvalidInput(f"{both[0]} is given both to register and to remove (--remove-redirect-uri).")
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
    if req.emulator_url is not None:
        if not req.emulator_endpoints:
            raise InputError("--emulator-url is used only with --emulator-endpoints.")
        problem = cypht.emulator_url_problem(req.emulator_url)
        if problem:
            raise InputError(f"--emulator-url {req.emulator_url!r}: {problem}.")
    if req.app_id is not None and not _looks_like_guid(req.app_id):
        raise InputError(f"--app-id {req.app_id!r} is not an application (client) ID; it looks like "
                         "00000000-0000-0000-0000-000000000000 (Entra admin center > App registrations).")
    unique_name = cypht.unique_name_for(uris[0])
    body = cypht.desired_registration(
        display_name=display_name, unique_name=unique_name, audience=audience, redirect_uris=uris,
        url=req.url or uris[0],
    )
    return Desired(req, uris, display_name, unique_name, body)


def _looks_like_guid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


def removed_redirect_uris(app: dict[str, Any] | None, request: ProvisionRequest) -> list[str]:
    """The --remove-redirect-uri values, each checked to be a redirect URI the registration has."""
    remove = [u.strip() for u in request.remove_redirect_uris]
    have = list(((app or {}).get("web") or {}).get("redirectUris") or [])
    unknown = [u for u in remove if u not in have]
    if unknown:
        raise InputError(
            f"--remove-redirect-uri {unknown[0]} is not a redirect URI of the registration "
            f"({', '.join(have) or 'it has none' if app else 'it does not exist yet'}).",
            hint="Give the URI exactly as `cypht-azure status` lists it; nothing was changed.")
    return remove


def registration_patch(app: dict[str, Any], plan: Desired) -> dict[str, Any]:
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
    had = list(web.get("redirectUris") or [])
    remove = removed_redirect_uris(app, plan.request)
    current_uris = [u for u in had if u not in remove]
    missing = [u for u in plan.redirect_uris if u not in current_uris]
    merged_uris = current_uris + missing
    for uri in merged_uris:
        problems = cypht.redirect_uri_problems(uri, str(audience))
        if problems and uri not in plan.redirect_uris:
            raise InputError(
                f"The registration already has the redirect URI {uri!r}, which is invalid for the audience "
                f"{audience}: " + "; ".join(problems) + ".",
                hint=f"Run again with --remove-redirect-uri '{uri}' to drop it from the registration (Cypht "
                     f"uses {plan.primary_uri}: a request without a page parameter reaches its home page, "
                     "which handles the sign-in), or choose another --audience.",
            )
    if missing or remove:
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


@dataclass
class ProvisionResult(Outcome):
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
    created: bool
    updated_fields: list[str]
    secret_created: bool
    secret_verified: bool | None
    dry_run: bool
    removed_key_ids: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    steps: list[StepRecord] = field(default_factory=list)
    deploy_hooks: list[dict[str, Any]] = field(default_factory=list)
    deploy_hooks_error: str | None = None
    # After the commit point, what went wrong without undoing anything (exit 1; see docs/guarantees.md).
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        if self.dry_run and self.created:  # no IDs yet: null, with `created` saying it would be made
            data["client_id"] = data["object_id"] = None
        return data


@dataclass(frozen=True)
class Held:
    """The live secret of this app that `.env` already holds (then no new one is added)."""

    secret: Secret
    key_id: str
    expires: str


def held_secret(doc: envfile.EnvDocument, providers: list[str], app: dict[str, Any] | None,
                now: dt.datetime) -> Held | None:
    if app is None:
        return None
    alive = {key_id_of(c): c for c in app.get("passwordCredentials") or []
             if (ends := parse_time(c.get("endDateTime"))) is not None and ends > now}
    for state in envstate.read_providers(doc, providers).values():
        if state.client_id and state.client_id.lower() == str(app["appId"]).lower() and state.secret \
                and state.secret_id in alive:
            return Held(state.secret, state.secret_id, str(alive[state.secret_id].get("endDateTime")))
    return None


def plan_provision(request: ProvisionRequest, doc: envfile.EnvDocument, app: dict[str, Any] | None,
                   now: dt.datetime, *, endpoints: cypht.SignInEndpoints | None = None,
                   has_service_principal: bool = True, shared: Shared | None = None) -> Plan:
    """The steps that bring the registration and `.env` to what Cypht needs. Pure: no I/O.

    ``has_service_principal``: the existing registration has its service principal in the tenant (a new
    one never has). ``endpoints``: an emulator's sign-in URLs for the endpoint keys (a rehearsal).
    ``shared``: the URL's registration serves another installation; ``app`` is then this installation's
    own registration (None: not made yet)."""
    desired = prepare(request) if shared is None else own_registration(prepare(request), shared)
    env_path = request.env_file
    named = envstate.named_client_id(envstate.read_providers(doc, request.providers), env_path)
    steps: list[Step] = []
    notes: list[str] = url_change_notes(url_changes(doc, request, desired, named))
    if shared is not None:
        notes.append(shared_note(shared, env_path, app))
    client_id: str | Fill = Fill.CLIENT_ID
    if app is None:
        removed_redirect_uris(app, request)  # nothing to remove from a registration still to be made
        steps.append(CreateRegistration(desired.display_name, desired.unique_name, desired.body))
    else:
        client_id = str(app["appId"])
        _require_ours(app, request, named)
        patch = registration_patch(app, desired)
        notes += [f"Remove the redirect URI {uri} from the registration (--remove-redirect-uri)."
                  for uri in removed_redirect_uris(app, request)]
        if patch:
            steps.append(PatchRegistration(client_id, tuple(sorted(patch)), patch))
    if app is None or not has_service_principal:
        steps.append(CreateServicePrincipal(client_id))
    held = held_secret(doc, request.providers, app, now)
    owners = owners_for(doc, env_path, client_id if isinstance(client_id, str) else "")
    held_ids = set(owners.held)
    credentials = list((app or {}).get("passwordCredentials") or [])
    room: list[str] = []
    secret: Secret | Fill = Fill.SECRET
    key_id: str | Fill = Fill.SECRET_ID
    if held is not None:
        secret, key_id = held.secret, held.key_id
        notes.append(f"Keep the client secret {held.key_id} that {env_path} holds (expires {held.expires}).")
    else:
        room = room_for_secret(app, owners, keep=held_ids) if app is not None else []
        steps += [RemoveSecret(k, MAKES_ROOM) for k in room]
        steps.append(AddSecret(new_secret_name(now, env_path, installation=owners.installation,
                                               after=min(held_ids, default=None)),
                               iso(now + request.secret_lifetime), request.secret_lifetime))
    values = env_values(doc, request.providers, client_id=client_id, secret=secret, key_id=key_id,
                        redirect_uri=desired.primary_uri, endpoints=endpoints)
    values.update({k: None for k in sorted(request.retire_keys) if doc.get(k) is not None})
    run_hooks: RunDeployHooks | None = None
    pending = (doc.get(envstate.DEPLOY_PENDING) or "").lower()
    if held is None and request.deploy_hooks:
        values[envstate.DEPLOY_PENDING] = Fill.SECRET_ID  # cleared once the hooks succeed
        run_hooks = RunDeployHooks(request.deploy_hooks, request.hooks_timeout)
    elif held is not None and pending == held.key_id:
        # rotate-secret wrote this secret but its deploy hooks did not succeed: they run first
        run_hooks = RunDeployHooks(request.deploy_hooks, request.hooks_timeout, key_id=held.key_id,
                                   expires=held.expires, retry=True, skip=request.skip_hooks)
    if values:
        values.update(installation_value(doc, owners))
    if values:
        switch = named if named and isinstance(client_id, str) and named.lower() != client_id.lower() else None
        steps.append(WriteEnv(str(env_path), values, switch_from=switch, commit=True))
    if run_hooks is not None:
        steps.append(run_hooks)
    if app is not None:
        keep = held_ids | ({held.key_id} if held else set())
        steps += [RemoveSecret(key_id_of(c), LEFT_BY_INTERRUPTED_RUN)
                  for c in owners.removable(credentials, keep=keep) if key_id_of(c) not in room]
        notes += copy_notes(owners, credentials)
    if held is None and request.verify:
        steps.append(VerifySecret(request.verify_timeout))
    if app is not None and held is None and request.verify:
        # The file this one replaced at this path (a redeploy) left its secret: no file holds it now.
        steps += [RemoveSecret(key_id_of(c), LEFT_BY_REPLACED_FILE)
                  for c in owners.replaced(credentials) if key_id_of(c) not in room]
    return Plan("provision", tuple(steps), tuple(notes))


def env_values(doc: envfile.EnvDocument, providers: list[str], *, client_id: str | Fill, secret: Secret | Fill,
               key_id: str | Fill, redirect_uri: str,
               endpoints: cypht.SignInEndpoints | None = None) -> dict[str, EnvValue]:
    """The `.env` keys that change: what provision writes per block, only where the value differs."""
    marks: dict[str, EnvValue] = {f"\0{fill.name}": fill for fill in Fill}
    updates = envstate.updates_for(
        doc, providers, client_id=client_id if isinstance(client_id, str) else f"\0{client_id.name}",
        secret=secret if isinstance(secret, Secret) else Secret(f"\0{secret.name}"),
        key_id=key_id if isinstance(key_id, str) else f"\0{key_id.name}", redirect_uri=redirect_uri,
        endpoints=endpoints,
    )
    values: dict[str, EnvValue] = {}
    for key, value in updates.items():
        if same_value(key, doc.get(key), value):
            continue
        if value is not None and value in marks:
            values[key] = marks[value]
        elif value is not None and key.endswith("_CLIENT_SECRET"):
            values[key] = Secret(value)  # a held secret copied into another block: never shown
        else:
            values[key] = value
    return values


def installation_value(doc: envfile.EnvDocument, owners: Owners) -> dict[str, EnvValue]:
    """The installation ID, recorded with the first write that lacks it (a key Cypht ignores)."""
    return {} if doc.get(INSTALLATION_KEY) == owners.installation else {INSTALLATION_KEY: owners.installation}


def copy_notes(owners: Owners, credentials: list[dict[str, Any]]) -> list[str]:
    copies = [key_id_of(c) for c in owners.copies(credentials)]
    if not copies:
        return []
    return [f"Leave alone {', '.join(copies)}: made by another .env with this installation ID "
            f"({owners.installation}), a copy of this file. Two files with one ID are not told apart; give the "
            f"copy its own ID: remove {INSTALLATION_KEY} from it and run rotate-secret there."]


def same_value(key: str, have: str | None, want: str | None) -> bool:
    """Whether `.env` already holds `want` for `key`; client IDs (GUIDs) compare case-insensitively."""
    if key.endswith("_CLIENT_ID") and have is not None and want is not None:
        return have.lower() == want.lower()
    return have == want


def _require_ours(app: dict[str, Any], request: ProvisionRequest, named: str | None) -> None:
    if request.app_id or cypht.TAG in (app.get("tags") or []):
        return
    env_path = request.env_file
    if named:
        raise InputError(
            f"{env_path} names client ID {app.get('appId')} ({app.get('displayName')!r}), an app registration "
            "that cypht-azure did not create.",
            hint=f"To let cypht-azure manage it, run again with --app-id {app.get('appId')}. To create a new "
                 f"registration instead, remove the *_CLIENT_ID lines from {env_path}.",
        )
    raise InputError(
        f"A registration for this URL already exists ({app.get('appId')}, {app.get('displayName')!r}, uniqueName "
        f"{app.get('uniqueName')}) and cypht-azure did not create it.",
        hint=f"To let cypht-azure manage it (its redirect URIs, permissions and tags are kept and only what "
             f"Cypht needs is added), run again with --app-id {app.get('appId')}.",
    )


async def emulator_base(session: Session, request: ProvisionRequest) -> str:
    """--emulator-endpoints: where the emulator serves the endpoints, for a Cypht rehearsing its sign-in.
    Refused (nothing changed) unless this run is against an emulator that outlives it: a real
    deployment's .env never gets an emulator's URL."""
    conn, base = session.connection, session.endpoints.authority_host
    if conn.sandbox:
        if not conn.sandbox_lasting and request.emulator_url is None:
            raise InputError(
                "--emulator-endpoints: the --sandbox emulator stops when this command ends, so Cypht could not "
                "reach the URLs it would write.",
                hint="Start `cypht-azure emulator --state-dir DIR --port 8443` with DIR the sandbox's folder "
                     "(--sandbox-dir; default $XDG_STATE_HOME/cypht-azure/sandbox): --sandbox then uses it. Or "
                     "point --authority-host/--graph-url at a running emulator.")
    elif not await asyncio.to_thread(rehearsal.is_emulator, base, ca_file=session.endpoints.ca_file,
                                     timeout=conn.timeout):
        raise InputError(
            f"--emulator-endpoints writes an emulator's sign-in URLs into .env, but {base} is not a cypht-azure "
            "emulator.", hint="Against Microsoft, leave it out: provision writes login.live.com's endpoints, "
                              "which Cypht needs. Use it with --sandbox or --authority-host at `cypht-azure emulator`.")
    return (request.emulator_url or base).rstrip("/")


async def read_registration(session: Session, request: ProvisionRequest, doc: envfile.EnvDocument,
                            ) -> tuple[dict[str, Any] | None, bool]:
    """The registration provision is about (--app-id, else the client ID `.env` names, else the URL's),
    and whether it has its service principal. With a client ID known, both are read at once."""
    named = envstate.named_client_id(envstate.read_providers(doc, request.providers), request.env_file)
    target = require_guid(request.app_id or named or "", "--app-id" if request.app_id else str(request.env_file)) \
        if (request.app_id or named) else None
    graph = session.graph
    if not target:
        found = await graph.get_application(unique_name=prepare(request).unique_name)
        has_sp = found is not None and await graph.get_service_principal(str(found["appId"])) is not None
        return found, has_sp
    app, sp = await asyncio.gather(graph.get_application(app_id=target), graph.get_service_principal(target))
    if app is None:
        env_path = request.env_file
        source = "--app-id" if request.app_id else str(env_path)
        raise AppNotFound(
            f"The app registration {target} named by {source} does not exist in tenant {session.tenant_id}.",
            hint=f"If it was deleted, restore it within 30 days with `cypht-azure restore --app-id {target}`. "
                 "It may also belong to another tenant (check --tenant). To create a new registration "
                 f"instead, remove the *_CLIENT_ID lines from {env_path} and run again.",
        )
    return app, sp is not None


def creates_first(request: ProvisionRequest, doc: envfile.EnvDocument) -> bool:
    """Whether provision may create the registration without reading Graph first: nothing names an app
    (no --app-id, no client ID in any provider block of `.env`) and the run changes things. The create
    itself refuses a uniqueName another registration holds (Graph's answer to POST /applications), so
    an existing registration is never changed by it; the run then reads it and plans against it."""
    if request.dry_run or request.app_id:
        return False
    return not any(s.client_id for s in envstate.read_providers(doc, list(cypht.PROVIDERS)).values())


async def provision(session: Session, request: ProvisionRequest, doc: envfile.EnvDocument,
                    on_record: Callable[[StepRecord], None]) -> ProvisionResult:
    base = await emulator_base(session, request) if request.emulator_endpoints else None
    if creates_first(request, doc):
        try:
            return await _provision(session, request, doc, on_record, None, False, base)
        except RegistrationTaken:  # nothing was changed: read what holds the name, plan against it
            session.progress.step("A registration for this URL exists: reading it")
    app, has_sp = await read_registration(session, request, doc)
    try:
        return await _provision(session, request, doc, on_record, app, has_sp, base)
    except RegistrationTaken as exc:
        taken = exc.unique_name
    # No registration holds the name, yet Graph refuses it: one deleted in the last 30 days keeps it.
    deleted = await session.graph.list_deleted_applications(
        filter=f"uniqueName eq '{taken}'", select=["id", "appId", "displayName", "deletedDateTime", "tags"])
    ours = [d for d in deleted if cypht.TAG in (d.get("tags") or [])]
    if not ours:
        which = f" ({deleted[0].get('appId')}, {deleted[0].get('displayName')!r})" if deleted else ""
        raise OperationFailed(
            f"Microsoft Graph refuses to create the registration: a deleted registration{which} not made by "
            f"cypht-azure holds its uniqueName {taken}. Nothing was changed.",
            hint="A registration deleted in the last 30 days keeps its uniqueName: restore it (Entra admin center "
                 "> App registrations > Deleted applications) and run again with --app-id, or delete it "
                 "permanently there and run again.")
    # cypht-azure's own registration for this URL, deleted by `deprovision`: brought back (its client ID
    # and settings; `restore` does the same), then planned against as a re-run.
    session.progress.step(f"Restoring the registration {ours[0]['appId']} deleted {ours[0].get('deletedDateTime')}")
    await session.graph.restore_deleted(str(ours[0]["id"]))
    app, has_sp = await read_registration(session, request, doc)
    if app is None:
        app = await session.graph.get_application(unique_name=taken, fresh_object=True)  # the restore may lag
    result = await _provision(session, request, doc, on_record, app, has_sp, base)
    result.notes.insert(0, f"Restored the app registration {ours[0]['appId']} for this URL, deleted "
                           f"{ours[0].get('deletedDateTime')}: a deleted registration keeps its uniqueName for 30 "
                           "days, so none could be created in its place.")
    return result


async def _provision(session: Session, request: ProvisionRequest, doc: envfile.EnvDocument,
                     on_record: Callable[[StepRecord], None], app: dict[str, Any] | None, has_sp: bool,
                     base: str | None) -> ProvisionResult:
    now = utcnow()
    shared = shared_registration(request, doc, app, now, prepare(request).unique_name)
    if shared is not None:  # another installation's: this one's own registration, if an earlier run made it
        app = await session.graph.get_application(unique_name=shared.unique_name)
        has_sp = app is not None and await session.graph.get_service_principal(str(app["appId"])) is not None
    endpoints = session.cypht_endpoints({**(app or {}), "signInAudience": prepare(request).body["signInAudience"]})
    endpoints = dataclasses.replace(endpoints, rehearsal_base=base)
    plan = plan_provision(request, doc, app, now, endpoints=endpoints, has_service_principal=has_sp, shared=shared)
    named = envstate.named_client_id(envstate.read_providers(doc, request.providers), request.env_file)
    confirm_url_change(request, plan, url_changes(doc, request, prepare(request), named))
    applied = Applied(object_id=str(app["id"]) if app else None, client_id=str(app["appId"]) if app else None)
    hook_error: str | None = None
    if request.dry_run:
        applied.records = planned(plan)
        held = held_secret(doc, request.providers, app, now)
        if request.run_hooks_in_dry_run and app is not None:
            hook_error = await rehearse_deploy_hooks(plan, request.env_file, str(app["appId"]),
                                                     held.key_id if held else None, held.expires if held else None,
                                                     applied)
    else:
        try:
            await apply(plan, Context(session, doc, request.env_file, applied, on_record=on_record))
        except DeployHookFailed as exc:  # after the commit point: report the outcome, exit with code 8
            hook_error = exc.message
    result = _result(request, plan, app, applied, session.tenant_id, now, doc)
    result.deploy_hooks = [r.summary() for r in applied.hook_runs]
    result.deploy_hooks_error = hook_error
    result.warnings = list(applied.warnings)
    return result


def _result(request: ProvisionRequest, plan: Plan, app: dict[str, Any] | None, applied: Applied, tenant_id: str,
            now: dt.datetime, doc: envfile.EnvDocument) -> ProvisionResult:
    desired = prepare(request)
    held = held_secret(doc, request.providers, app, now)
    creating = plan.of(CreateRegistration)
    patch = plan.of(PatchRegistration)
    body: dict[str, Any] = dict(app or (creating[0].body if creating else desired.body))
    if patch:
        body.update(patch[0].patch)
    write = plan.of(WriteEnv)
    return ProvisionResult(
        client_id=applied.client_id or "(new)",
        object_id=applied.object_id or "(new)",
        tenant_id=tenant_id,
        display_name=str(body.get("displayName") or desired.display_name),
        unique_name=(app or {}).get("uniqueName") or (creating[0].unique_name if creating else desired.unique_name),
        sign_in_audience=str(body.get("signInAudience") or desired.body["signInAudience"]),
        redirect_uris=list((body.get("web") or {}).get("redirectUris") or desired.redirect_uris),
        secret_key_id=applied.key_id or (held.key_id if held else None),
        secret_expires=applied.expires or (held.expires if held else None),
        env_file=str(request.env_file),
        keys_written=applied.keys_written if not request.dry_run else list(write[0].keys) if write else [],
        created=applied.created if not request.dry_run else bool(creating),
        updated_fields=applied.updated_fields if not request.dry_run else list(patch[0].fields) if patch else [],
        secret_created=applied.key_id is not None,
        secret_verified=applied.verified,
        dry_run=request.dry_run,
        removed_key_ids=applied.removed,
        notes=list(plan.notes),
        steps=applied.records,
    )
