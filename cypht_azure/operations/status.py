"""`status`: what `.env` and Graph say, side by side, and what is wrong or about to be.

One `.env` costs one Graph request (the app with its secrets, `$select`-ed); `--all` pages through
every tagged app with `$top=999` and `$select`, so thousands of apps take a handful of requests.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cypht_azure import cypht, envfile
from cypht_azure.operations import envstate
from cypht_azure.operations.apps import Target, fetch_app
from cypht_azure.operations.secrets import key_id_of, owner_label
from cypht_azure.operations.session import Session, parse_time, utcnow, verify_secret

DEFAULT_WARN_WITHIN = dt.timedelta(days=30)


@dataclass
class Finding:
    severity: str  # "error" | "warning" | "info"
    code: str
    message: str
    fix: str = ""


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
    verify_secret: bool = False
    warn_within: dt.timedelta = DEFAULT_WARN_WITHIN


def _days_left(end: dt.datetime | None, now: dt.datetime) -> float | None:
    return None if end is None else round((end - now).total_seconds() / 86400, 1)


def read_env(doc: envfile.EnvDocument) -> list[ProviderInfo]:
    infos = []
    for provider, state in envstate.read_providers(doc, list(cypht.PROVIDERS)).items():
        infos.append(ProviderInfo(provider, state.client_id, state.client_uri, state.secret_id,
                                  state.secret is not None, state.missing))
    return infos


def env_findings(providers: list[ProviderInfo], env_path: Path) -> list[Finding]:
    findings: list[Finding] = []
    ids = {p.client_id for p in providers if p.client_id}
    if len(ids) > 1:
        findings.append(Finding(
            "error", "providers-differ",
            "The provider blocks point at different apps: "
            + ", ".join(f"{p.provider.upper()}_CLIENT_ID={p.client_id}" for p in providers if p.client_id) + ".",
            "Run `cypht-azure provision --app-id ID` to make both blocks use one registration.",
        ))
    for p in providers:
        if not p.client_id:
            continue
        keys = cypht.provider_keys(p.provider)
        if not p.has_secret:
            findings.append(Finding("error", "missing-keys", f"{keys.client_secret} is missing or empty.",
                                    "Run `cypht-azure rotate-secret` to create and store a secret."))
        if not p.client_uri:
            findings.append(Finding(
                "error", "missing-keys",
                f"{keys.client_uri} is missing: Cypht then uses http://localhost/?page=home, which no "
                "registration accepts.", "Run `cypht-azure provision --url <Cypht's URL>`."))
        if p.has_secret and not p.secret_id:
            findings.append(Finding(
                "warning", "secret-unknown",
                f"{keys.client_secret} is set but {keys.secret_id} is not, so cypht-azure cannot tell which "
                "client secret it is.", "Run `cypht-azure rotate-secret` to replace it with a tracked one."))
    return findings


async def status(session: Session, req: StatusRequest, target: Target, doc: envfile.EnvDocument) -> StatusResult:
    env_path = req.env_file
    now = utcnow()
    providers = read_env(doc)
    findings = env_findings(providers, env_path)
    result = StatusResult(str(env_path), session.tenant_id, None, providers, [], findings)
    app = await fetch_app(session, target)
    if app is None:
        deleted = []
        if target.app_id:
            deleted = await session.graph.list_deleted_applications(
                filter=f"appId eq '{target.app_id}'", select=["id", "appId", "displayName", "deletedDateTime"])
        if deleted:
            findings.append(Finding(
                "error", "app-deleted",
                f"The app registration {target.app_id} was deleted on {deleted[0].get('deletedDateTime')}.",
                f"Restore it within 30 days: `cypht-azure restore --app-id {target.app_id}`.",
            ))
        else:
            findings.append(Finding(
                "error", "app-not-found",
                f"No app registration {target.app_id or target.unique_name} (named by {target.source}) in "
                f"tenant {session.tenant_id}.",
                "Check --tenant, or run `cypht-azure provision` to create one.",
            ))
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
        if p.client_id == client_id and p.secret_id:
            holders.setdefault(p.secret_id, []).append(p.provider)
    for cred in sorted(app.get("passwordCredentials") or [], key=lambda c: str(c.get("endDateTime") or "")):
        end = parse_time(cred.get("endDateTime"))
        key = key_id_of(cred)
        result.secrets.append(SecretInfo(
            key, cred.get("displayName"), owner_label(cred, env_path), cred.get("hint"),
            cred.get("startDateTime"), cred.get("endDateTime"), _days_left(end, now), holders.get(key, []),
        ))

    for p in providers:
        if not p.client_id or p.client_id != client_id:
            continue
        keys = cypht.provider_keys(p.provider)
        if p.client_uri and p.client_uri not in uris:
            findings.append(Finding(
                "error", "redirect-mismatch",
                f"{keys.client_uri}={p.client_uri} is not a redirect URI of the app ({', '.join(uris) or 'none'}): "
                "sign-in fails with AADSTS50011.",
                "Run `cypht-azure provision --url <Cypht's URL>` to register it.",
            ))
        if p.secret_id and p.secret_id not in {s.key_id for s in result.secrets}:
            findings.append(Finding(
                "error", "secret-not-in-app",
                f"The client secret in {keys.client_secret} ({p.secret_id}) no longer exists on the app: "
                "sign-in fails with AADSTS7000215.", "Run `cypht-azure rotate-secret`."))
    if cypht.includes_personal(audience):
        for uri in uris:
            if "?" in uri:
                findings.append(Finding(
                    "error", "redirect-query-personal",
                    f"The redirect URI {uri} has a query string, which Entra refuses for apps that accept "
                    "personal accounts.", "Register the bare base URL instead: `cypht-azure provision --url ...`."))

    held = [s for s in result.secrets if s.in_env]
    if held:
        first = min(held, key=lambda s: s.days_left if s.days_left is not None else -1e9)
        result.env_secret_expires = first.end
        result.env_secret_days_left = first.days_left
        days = first.days_left or 0.0
        if days <= 0:
            findings.append(Finding("error", "secret-expired", f"The client secret in .env ({first.key_id}) "
                                    f"expired on {first.end}: Outlook/Office365 sign-in is broken.",
                                    "Run `cypht-azure rotate-secret` now."))
        elif days <= req.warn_within.total_seconds() / 86400:
            findings.append(Finding("warning", "secret-expiring", f"The client secret in .env ({first.key_id}) "
                                    f"expires in {days:.0f} days ({first.end}).",
                                    "Run `cypht-azure rotate-secret` (or schedule it with --if-expiring-within)."))

    if req.verify_secret:
        secret_state = next((s for s in envstate.read_providers(doc, list(cypht.PROVIDERS)).values()
                             if s.client_id == client_id and s.secret), None)
        if secret_state is not None and secret_state.secret is not None:
            ok, why = verify_secret(session, client_id, secret_state.secret, timeout=0)
            result.secret_verified = ok
            if not ok:
                findings.append(Finding("error", "secret-rejected",
                                        f"The token endpoint refused the client secret in .env: {why}",
                                        "Run `cypht-azure rotate-secret`."))
    return result


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
