"""`status`: what `.env` and Graph say, side by side, and what is wrong or about to be.

One `.env` costs one Graph request (the app with its secrets, `$select`-ed); `--all` pages through
every tagged app with `$top=999` and `$select`, so thousands of apps take a handful of requests.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cypht_azure import cypht, envfile
from cypht_azure.operations.checks import findings
from cypht_azure.operations.checks.findings import Finding
from cypht_azure.operations.core import envstate
from cypht_azure.operations.core.apps import Target, choose_target, fetch_app, find_deleted
from cypht_azure.operations.core.runner import MakeConnection, env_read, signed_in
from cypht_azure.operations.core.secrets import key_id_of, owners_for
from cypht_azure.operations.core.session import (
    Progress,
    Session,
    parse_time,
    secret_credential,
    try_secret,
    utcnow,
    verify_secret,
)
from cypht_azure.secret import Secret

DEFAULT_WARN_WITHIN = dt.timedelta(days=30)


@dataclass
class SecretInfo:
    key_id: str
    display_name: str | None
    created_by: str
    hint: str | None
    start: str | None
    end: str | None
    days_left: float | None
    in_env: list[str]


@dataclass
class ProviderInfo:
    provider: str
    client_id: str | None
    client_uri: str | None
    secret_id: str | None
    has_secret: bool
    missing_keys: list[str]


@dataclass
class StatusResult:
    env_file: str
    tenant_id: str
    app: dict[str, Any] | None
    providers: list[ProviderInfo]
    secrets: list[SecretInfo]
    findings: list[Finding]
    env_secret_expires: str | None = None
    env_secret_days_left: float | None = None
    secret_verified: bool | None = None

    @property
    def has_errors(self) -> bool:
        return any(f.severity == "error" for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = not self.has_errors
        return data


@dataclass
class StatusRequest:
    env_file: Path
    app_id: str | None = None
    url: str | None = None
    verify_secret: bool = True  # one try at the token endpoint, changing nothing
    create_service_principal: bool = False  # --verify-secret given: create a missing one and wait for it
    warn_within: dt.timedelta = DEFAULT_WARN_WITHIN
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ), repr=False)


def _days_left(end: dt.datetime | None, now: dt.datetime) -> float | None:
    """Fractional days, precise to a minute or two: a secret with an hour left is not 0 days from expiry."""
    return None if end is None else round((end - now).total_seconds() / 86400, 3)


def read_env(doc: envfile.EnvDocument) -> list[ProviderInfo]:
    infos = []
    for provider, state in envstate.read_providers(doc, list(cypht.PROVIDERS)).items():
        infos.append(ProviderInfo(provider, state.client_id, state.client_uri, state.secret_id,
                                  state.secret is not None, state.missing))
    return infos


def declared_blocks(doc: envfile.EnvDocument) -> set[str]:
    """The providers whose block is in `.env`, even with every value empty (as in Cypht's .env.example)."""
    return {p for p in cypht.PROVIDERS if any(doc.get(k) is not None for k in cypht.provider_keys(p).all())}


def known_url(providers: list[ProviderInfo], given: str | None) -> str | None:
    """Cypht's URL as this run knows it, for the commands the findings suggest: --url, else .env's."""
    return given or next((p.client_uri for p in providers if p.client_uri), None)


def env_findings(providers: list[ProviderInfo], env_path: Path, declared: set[str],
                 url: str | None = None) -> list[Finding]:
    found: list[Finding] = []
    ids = {p.client_id.lower() for p in providers if p.client_id}
    if len(ids) > 1:
        found.append(findings.providers_differ(
            f"{p.provider.upper()}_CLIENT_ID={p.client_id}" for p in providers if p.client_id))
    for p in providers:
        keys = cypht.provider_keys(p.provider)
        if not p.client_id:
            if p.provider in declared:
                # The block is in .env with an empty client ID (Cypht's .env.example): Cypht still offers
                # the provider and sends users to Microsoft without a client ID.
                found.append(findings.missing_client_id(keys.client_id, url))
            continue
        if not p.has_secret:
            found.append(findings.missing_secret(keys.client_secret))
        if not p.client_uri:
            found.append(findings.missing_client_uri(keys.client_uri, url))
        if p.has_secret and not p.secret_id:
            found.append(findings.secret_unknown(keys.client_secret, keys.secret_id))
    return found


def endpoint_findings(doc: envfile.EnvDocument, providers: list[ProviderInfo], client_id: str,
                      endpoints: cypht.SignInEndpoints) -> list[Finding]:
    """Endpoint keys that cannot sign in the app's audience and, for a directory-only audience, what
    Cypht's hard-coded wl.imap scope means there."""
    found: list[Finding] = []
    blocks = [p for p in providers if p.client_id == client_id]
    for p in blocks:
        for key, value, problem in envstate.endpoint_problems(doc, p.provider, endpoints):
            found.append(findings.endpoint_audience(key, value, endpoints.audience, problem))
    if blocks and cypht.scope_note(endpoints.audience):
        found.append(findings.cypht_scope(endpoints.audience))
    return found


async def status(session: Session, req: StatusRequest, target: Target, doc: envfile.EnvDocument) -> StatusResult:
    env_path = req.env_file
    now = utcnow()
    providers = read_env(doc)
    url = known_url(providers, req.url)
    found = env_findings(providers, env_path, declared_blocks(doc), url)
    values = doc.as_dict()
    found += findings.shadowing(s for p in cypht.PROVIDERS if p in declared_blocks(doc)
                                for s in cypht.read_settings(p, values, req.environ).values())
    result = StatusResult(str(env_path), session.tenant_id, None, providers, [], found)
    app = await fetch_app(session, target)
    if app is None:
        deleted = await find_deleted(session, target)
        if deleted is not None:
            found.append(findings.app_deleted(str(deleted.get("appId")), deleted.get("deletedDateTime")))
        else:
            found.append(findings.app_not_found(str(target.app_id or target.unique_name), target.source,
                                                session.tenant_id, url))
        return result

    client_id = str(app["appId"])
    audience = str(app.get("signInAudience"))
    uris = list((app.get("web") or {}).get("redirectUris") or [])
    result.app = {
        "client_id": client_id, "object_id": app.get("id"), "display_name": app.get("displayName"),
        "sign_in_audience": audience, "redirect_uris": uris, "unique_name": app.get("uniqueName"),
        "managed_by_cypht_azure": cypht.TAG in (app.get("tags") or []),
    }
    holders: dict[str, list[str]] = {}
    for p in providers:
        if (p.client_id or "").lower() == client_id.lower() and p.secret_id:
            holders.setdefault(p.secret_id, []).append(p.provider)
    credentials = list(app.get("passwordCredentials") or [])
    owners = owners_for(doc, env_path, client_id)
    if copies := [key_id_of(c) for c in owners.copies(credentials)]:
        found.append(findings.env_copied(owners.installation, copies))
    for cred in sorted(credentials, key=lambda c: str(c.get("endDateTime") or "")):
        end = parse_time(cred.get("endDateTime"))
        key = key_id_of(cred)
        result.secrets.append(SecretInfo(
            key, cred.get("displayName"), owners.label(cred, credentials), cred.get("hint"),
            cred.get("startDateTime"), cred.get("endDateTime"), _days_left(end, now), holders.get(key, []),
        ))

    for p in providers:
        if not p.client_id or p.client_id.lower() != client_id.lower():
            continue
        keys = cypht.provider_keys(p.provider)
        if p.client_uri and p.client_uri not in uris:
            found.append(findings.redirect_mismatch(keys.client_uri, p.client_uri, uris))
        if p.secret_id and p.secret_id not in {s.key_id for s in result.secrets}:
            found.append(findings.secret_not_in_app(keys.client_secret, p.secret_id))
    found.extend(endpoint_findings(doc, providers, client_id, session.cypht_endpoints(app)))
    if cypht.includes_personal(audience):
        found.extend(findings.redirect_query_personal(uri) for uri in uris if "?" in uri)

    held = [s for s in result.secrets if s.in_env]
    if held:
        first = min(held, key=lambda s: s.days_left if s.days_left is not None else -1e9)
        result.env_secret_expires = first.end
        result.env_secret_days_left = first.days_left
        end = parse_time(first.end)
        if end is None or end <= now:  # compared as times: a secret with an hour left has not expired
            found.append(findings.secret_expired(first.key_id, first.end))
        elif end - now <= req.warn_within:
            found.append(findings.secret_expiring(first.key_id, (end - now).total_seconds() / 86400, first.end))

    if req.verify_secret:
        secret_state = next((s for s in envstate.read_providers(doc, list(cypht.PROVIDERS)).values()
                             if (s.client_id or "").lower() == client_id.lower() and s.secret), None)
        if secret_state is not None and secret_state.secret is not None:
            found += await check_secret(session, req, client_id, secret_state.secret, result,
                                        expired=any(f.code == "secret-expired" for f in found))
    return result


async def check_secret(session: Session, req: StatusRequest, client_id: str, secret: Secret, result: StatusResult,
                       *, expired: bool) -> list[Finding]:
    """The .env secret at the token endpoint: one request. Only with --verify-secret given is a missing
    service principal created (then the secret is tried again); by default status changes nothing."""
    if req.create_service_principal:
        ok, why = await verify_secret(session, client_id, secret, timeout=0)
        result.secret_verified = ok
        return [] if ok else [findings.secret_rejected(why)]
    check = await asyncio.to_thread(try_secret, session, secret_credential(session, client_id, secret))
    result.secret_verified = {"accepted": True, "rejected": False}.get(check.verdict)
    if check.verdict == "rejected" and not expired:
        return [findings.secret_rejected(check.why)]
    if check.verdict == "no-service-principal":
        return [findings.service_principal_missing(client_id, session.tenant_id)]
    if check.verdict == "unreachable":
        return [findings.secret_check_failed(check.why)]
    return []


@dataclass
class AppSummary:
    client_id: str
    object_id: str
    display_name: str | None
    sign_in_audience: str | None
    redirect_uris: list[str]
    secrets: int
    nearest_expiry: str | None
    days_left: float | None


@dataclass
class StatusAllResult:
    tenant_id: str
    apps: list[AppSummary] = field(default_factory=list)
    requests: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


ALL_SELECT = ["id", "appId", "displayName", "signInAudience", "web", "passwordCredentials"]


async def status_all(session: Session) -> StatusAllResult:
    """Every app tagged cypht-azure, most urgent first: apps with no live secret, then soonest expiry."""
    now = utcnow()
    result = StatusAllResult(session.tenant_id)
    async for page in session.graph.list_applications(
        filter=f"tags/any(t:t eq '{cypht.TAG}')", select=ALL_SELECT, top=999,
    ):
        for app in page:
            ends = [e for c in app.get("passwordCredentials") or [] if (e := parse_time(c.get("endDateTime")))]
            live = [e for e in ends if e > now]
            nearest = min(live) if live else (max(ends) if ends else None)
            result.apps.append(AppSummary(
                str(app.get("appId")), str(app.get("id")), app.get("displayName"), app.get("signInAudience"),
                list((app.get("web") or {}).get("redirectUris") or []), len(ends),
                nearest.strftime("%Y-%m-%dT%H:%M:%SZ") if nearest else None, _days_left(nearest, now),
            ))
    result.apps.sort(key=lambda a: a.days_left if a.days_left is not None else float("-inf"))
    result.requests = session.graph.requests_sent
    return result


# --- the command's order (core.runner's): read .env -> choose the app -> sign in -> read and report -------

def run_status(request: StatusRequest, make_connection: MakeConnection, progress: Progress) -> StatusResult:
    with env_read(request.env_file, writes=False) as doc:
        target = choose_target(doc, request.env_file, app_id=request.app_id, url=request.url, report_only=True)
        return signed_in(make_connection, progress, lambda s: status(s, request, target, doc))


def run_status_all(make_connection: MakeConnection, progress: Progress) -> StatusAllResult:
    return signed_in(make_connection, progress, status_all)
