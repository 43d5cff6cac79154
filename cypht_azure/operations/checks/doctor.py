"""`doctor`: will Cypht's Outlook/Office365 sign-in work with this `.env`?

For each provider block, in Cypht's own terms:
1. read the six values as Cypht does: symfony/dotenv never overrides a variable the process already has
   (those keys are *shadowed*), and Cypht's `env()` falls back to its default for an empty value;
2. build the authorize URL exactly as Cypht does (cypht.authorize_url);
3. check it against Entra through Graph: the registration exists and accepts the accounts that endpoint
   signs in, CLIENT_URI is a Web redirect URI character for character, wl.imap is valid there, the token
   endpoint belongs to the authorize endpoint, and the secret gets a token (client credentials in the
   app's tenant) and does not expire within --warn-within;
4. against the emulator, go all the way: sign in as a simulated user, redeem the code with the `.env`
   secret and CLIENT_URI, refresh — and report each answer.

Graph requests: one GET per distinct client ID (plus one for deleted apps when it is missing); token
requests: the sign-in plus one per distinct client ID and secret.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cypht_azure import cypht, envdisk, rehearsal
from cypht_azure.errors import InputError
from cypht_azure.operations.checks import findings
from cypht_azure.operations.checks.findings import Finding
from cypht_azure.operations.checks.status import DEFAULT_WARN_WITHIN
from cypht_azure.operations.core.session import (
    Connection,
    Progress,
    SecretCheck,
    Session,
    open_session,
    parse_time,
    secret_credential,
    try_secret,
    utcnow,
)
from cypht_azure.secret import Secret

APP_SELECT = ["id", "appId", "displayName", "signInAudience", "web", "spa", "publicClient", "passwordCredentials",
              "publisherDomain"]
# Where Microsoft serves the endpoints Cypht may be configured with; the emulator serves the same paths.
MICROSOFT_SIGN_IN_HOSTS = cypht.DIRECTORY_LOGIN_HOSTS | {cypht.LIVE_HOST}
PERSONAL_ACCOUNT = "cypht.rehearsal@outlook.com"
ENDPOINT_KEYS = ("AUTH_URI", "TOKEN_URI", "REFRESH_URI")


@dataclass
class DoctorRequest:
    env_file: Path
    warn_within: dt.timedelta = DEFAULT_WARN_WITHIN
    providers: list[str] = field(default_factory=lambda: list(cypht.PROVIDERS))
    login_hint: str | None = None


@dataclass
class KeyReport:
    key: str
    source: str  # "environment", ".env" or "default"
    shadowed: bool
    value: str | None  # None for the client secret, which is never shown


@dataclass
class StepReport:
    name: str
    ok: bool | None
    status: int | None
    answer: str


@dataclass
class ProviderReport:
    provider: str
    label: str
    configured: bool
    client_id: str
    client_uri: str
    auth_uri: str
    token_uri: str
    refresh_uri: str
    endpoint: str
    accounts: str
    keys: list[KeyReport]
    shadowed: list[str]
    authorize_url: str | None
    sign_in_audience: str | None = None
    secret_key_id: str | None = None
    secret_expires: str | None = None
    secret_days_left: float | None = None
    secret_check: str | None = None
    steps: list[StepReport] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def works(self) -> bool:
        return self.configured and not any(f.severity == "error" for f in self.findings)

    def shown(self) -> dict[str, Any]:
        """The report as printed: a value the process environment set is named, never shown (it is the
        operator's environment, not Cypht's, and may hold anything)."""
        data = asdict(self)
        from_environment = {k.key.split("_", 1)[1] for k in self.keys if k.source == "environment"}
        for suffix, name in SHOWN_FIELDS.items():
            if suffix in from_environment:
                data[name] = FROM_ENVIRONMENT
        if from_environment - {"CLIENT_SECRET"} and data["authorize_url"] is not None:
            data["authorize_url"] = FROM_ENVIRONMENT
        return data


FROM_ENVIRONMENT = "(set in the environment; not shown)"
SHOWN_FIELDS = {"CLIENT_ID": "client_id", "CLIENT_URI": "client_uri", "AUTH_URI": "auth_uri",
                "TOKEN_URI": "token_uri", "REFRESH_URI": "refresh_uri"}


@dataclass
class DoctorResult:
    env_file: str
    tenant_id: str | None
    rehearsed: bool
    providers: list[ProviderReport]
    graph_requests: int = 0
    # Values of Cypht's keys that the process environment set: used for the checks, never shown.
    hidden: list[str] = field(default_factory=list, repr=False)

    def redact(self, value: Any) -> Any:
        """`value` (text, or JSON data) with every hidden value replaced by FROM_ENVIRONMENT."""
        if isinstance(value, str):
            for hidden in self.hidden:
                value = value.replace(hidden, FROM_ENVIRONMENT)
            return value
        if isinstance(value, dict):
            return {k: self.redact(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.redact(v) for v in value]
        return value

    @property
    def findings(self) -> list[Finding]:
        seen: list[Finding] = []
        for p in self.providers:
            seen += [f for f in p.findings if f not in seen]
        return seen

    @property
    def works(self) -> bool:
        """Cypht's sign-in works for every configured block (and at least one is), and no secret expires
        within --warn-within."""
        configured = [p for p in self.providers if p.configured]
        expiring = any(f.code == "secret-expiring" for f in self.findings)
        return bool(configured) and all(p.works for p in configured) and not expiring

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["providers"] = [report.shown() for report in self.providers]
        for report, entry in zip(self.providers, data["providers"], strict=True):
            entry["works"] = report.works
        data["findings"] = [asdict(f) for f in self.findings]
        data["works"] = self.works
        del data["hidden"]
        return self.redact(data)  # type: ignore[no-any-return]


# --- 1. and 2.: the .env, as Cypht reads it (no network) ----------------------------------------------------

def read_provider(provider: str, file_values: Mapping[str, str], environ: Mapping[str, str],
                  login_hint: str | None, url: str | None = None) -> ProviderReport:
    s = cypht.read_settings(provider, file_values, environ)
    # Shown: what .env says. A value the process environment sets is named (shadowing), never shown.
    keys = [KeyReport(v.key, v.source, v.shadowed,
                      None if suffix == "CLIENT_SECRET" or v.source == "environment" else v.value)
            for suffix, v in s.items()]
    auth_uri, client_id, client_uri = s["AUTH_URI"].value, s["CLIENT_ID"].value, s["CLIENT_URI"].value
    ep = cypht.parse_endpoint(auth_uri)
    report = ProviderReport(
        provider=provider, label=cypht.PROVIDER_LABELS[provider],
        configured=bool(client_id) or s["CLIENT_SECRET"].source != "default",
        client_id=client_id, client_uri=client_uri, auth_uri=auth_uri, token_uri=s["TOKEN_URI"].value,
        refresh_uri=s["REFRESH_URI"].value, endpoint=ep.describe(), accounts=ep.accounts,
        keys=keys, shadowed=[v.key for v in s.values() if v.shadowed],
        authorize_url=cypht.authorize_url(auth_uri, client_id, client_uri, login_hint) if client_id else None,
    )
    report.findings = offline_findings(provider, s, url)
    return report


def offline_findings(provider: str, s: Mapping[str, cypht.Setting], url: str | None = None) -> list[Finding]:
    """What is wrong before asking Entra anything. ``url``: Cypht's URL as another block of .env says it,
    for the commands suggested."""
    prefix = cypht.PROVIDERS[provider]
    found: list[Finding] = findings.shadowing(s.values())
    if s["CLIENT_ID"].source == "default":
        if s["CLIENT_SECRET"].source == "default":  # an untouched block, as in Cypht's .env.example
            return [*found, findings.provider_not_configured(prefix, url)]
        found.append(findings.missing_client_id(s["CLIENT_ID"].key, url))
    if s["CLIENT_SECRET"].source == "default":
        found.append(findings.missing_secret(s["CLIENT_SECRET"].key))
    client_uri = s["CLIENT_URI"]
    if client_uri.source == "default":
        found.append(findings.missing_client_uri(client_uri.key, url))
    for problem in cypht.client_uri_problems(client_uri.value):
        found.append(findings.client_uri_unusable(client_uri.key, client_uri.value, problem))
    problems: set[str] = set()
    for suffix in ENDPOINT_KEYS:
        why = cypht.endpoint_problem(s[suffix].value, "authorize" if suffix == "AUTH_URI" else "token")
        if why:
            problems.add(suffix)
            found.append(findings.endpoint_invalid(s[suffix].key, s[suffix].value, why))
    auth = s["AUTH_URI"]
    if "AUTH_URI" not in problems:
        verdict = cypht.scope_verdict(cypht.parse_endpoint(auth.value))
        if verdict == "invalid":
            found.append(findings.scope_invalid(auth.key, auth.value))
        elif verdict == "unverified":
            found.append(findings.scope_unverified(auth.key, auth.value))
        if "TOKEN_URI" not in problems and not cypht.endpoints_match(auth.value, s["TOKEN_URI"].value):
            found.append(findings.endpoints_mismatch(auth.key, auth.value, s["TOKEN_URI"].key, s["TOKEN_URI"].value))
    return found


# --- 3.: the registration, through Graph ---------------------------------------------------------------------

def registration_findings(report: ProviderReport, app: dict[str, Any], tenant_id: str) -> list[Finding]:
    prefix = cypht.PROVIDERS[report.provider]
    found: list[Finding] = []
    audience = str(app.get("signInAudience"))
    report.sign_in_audience = audience
    web = list((app.get("web") or {}).get("redirectUris") or [])
    uri, key = report.client_uri, f"{prefix}_CLIENT_URI"
    if uri not in web:
        other = next((name for name, prop in (("single-page application", "spa"),
                                               ("mobile and desktop", "publicClient"))
                      if uri in ((app.get(prop) or {}).get("redirectUris") or [])), None)
        if other:
            found.append(findings.redirect_not_web(key, uri, other))
        else:
            near = next((u for u in web if u.lower().rstrip("/") == uri.lower().rstrip("/")), None)
            found.append(findings.redirect_mismatch(key, uri, web, near))
    ep = cypht.parse_endpoint(report.auth_uri)
    if ep.family in ("live", "v2"):
        home = {tenant_id.lower(), str(app.get("publisherDomain") or "").lower()}
        refusal = cypht.audience_refusal(ep, audience, str(app.get("appId")), home)
        if refusal:
            found.append(findings.endpoint_audience(f"{prefix}_AUTH_URI", report.auth_uri, audience, refusal))
    return found


def secret_findings(report: ProviderReport, app: dict[str, Any], secret: Secret, secret_id: str | None,
                    warn_within: dt.timedelta) -> list[Finding]:
    """Which credential the secret is (by the secret ID .env records, else by the hint Graph keeps: the
    value's first characters), and when it expires."""
    creds = list(app.get("passwordCredentials") or [])
    cred = next((c for c in creds if secret_id and str(c.get("keyId", "")).lower() == secret_id), None)
    if cred is None:
        matching = [c for c in creds if c.get("hint") and secret.reveal().startswith(str(c["hint"]))]
        cred = matching[0] if len(matching) == 1 else None
    if cred is None:
        return []
    end = parse_time(cred.get("endDateTime"))
    report.secret_key_id = str(cred.get("keyId"))
    report.secret_expires = cred.get("endDateTime")
    if end is None:
        return []
    days = round((end - utcnow()).total_seconds() / 86400, 1)
    report.secret_days_left = days
    if days <= 0:
        return [findings.secret_expired(report.secret_key_id, report.secret_expires)]
    if days <= warn_within.total_seconds() / 86400:
        return [findings.secret_expiring(report.secret_key_id, days, report.secret_expires)]
    return []


def check_findings(report: ProviderReport, check: SecretCheck, app_id: str, tenant_id: str) -> list[Finding]:
    key = f"{cypht.PROVIDERS[report.provider]}_CLIENT_SECRET"
    if check.verdict == "no-service-principal":
        return [findings.service_principal_missing(app_id, tenant_id)]
    if check.verdict == "rejected" and not any(f.code == "secret-expired" for f in report.findings):
        source = next(k.source for k in report.keys if k.key == key)
        return [findings.secret_rejected(check.why, key, from_environment=source == "environment")]
    if check.verdict == "unreachable":
        return [findings.secret_check_failed(check.why)]
    return []


# --- 4.: the whole sign-in, against the emulator ----------------------------------------------------------

def emulator_names(base_url: str, info: Mapping[str, Any] | None) -> set[str]:
    """host:port spellings that reach the emulator doctor talks to: its URL, and the names its certificate
    carries (`cypht-azure emulator --host NAME`, how a Cypht container reaches it)."""
    if info is None:
        return set()
    base = urlsplit(base_url)
    names = {"localhost", "127.0.0.1", *(str(h).lower() for h in info.get("hosts") or [])}
    return {base.netloc.lower()} | {f"{n}:{base.port}" for n in names if base.port}


def on_emulator(uri: str, base_url: str, names: set[str]) -> str | None:
    """Where doctor replays an endpoint: Microsoft's hosts and the emulator's other names map to the same
    path at ``base_url``; None for any other host."""
    parts = urlsplit(uri)
    if parts.netloc.lower() in names or (parts.hostname or "").lower() in MICROSOFT_SIGN_IN_HOSTS:
        return base_url.rstrip("/") + uri[len(f"{parts.scheme}://{parts.netloc}"):]
    return None


def host_findings(report: ProviderReport, names: set[str]) -> list[Finding]:
    """Cypht must talk to Microsoft's sign-in hosts (or, in a rehearsal, to the emulator doctor runs against)."""
    prefix = cypht.PROVIDERS[report.provider]
    found = []
    for suffix, uri in zip(ENDPOINT_KEYS, (report.auth_uri, report.token_uri, report.refresh_uri), strict=True):
        parts = urlsplit(uri)
        host = (parts.hostname or "").lower()
        if host and host not in MICROSOFT_SIGN_IN_HOSTS and parts.netloc.lower() not in names:
            found.append(findings.endpoint_invalid(
                f"{prefix}_{suffix}", uri, "it is not a Microsoft sign-in host"
                + (" (an emulator's URL outside a rehearsal?)" if not names else " nor this emulator")))
    return found


def rehearse(report: ProviderReport, secret: Secret, base_url: str, names: set[str], account: str,
             client: rehearsal.Rehearsal) -> None:
    prefix = cypht.PROVIDERS[report.provider]
    urls = [on_emulator(u, base_url, names) for u in (report.auth_uri, report.token_uri, report.refresh_uri)]
    auth, token, refresh = urls
    if auth is None or token is None:
        report.steps.append(StepReport("authorize", None, None, "not attempted: the endpoints are neither "
                                                                "Microsoft's nor this emulator's"))
        return
    url = cypht.authorize_url(auth, report.client_id, report.client_uri, account)
    step, code = client.authorize(url, report.client_uri, account)
    report.steps.append(StepReport(step.name, step.ok, step.status, f"as {account}: {step.answer}"))
    if code is None:
        if step.ok is None:
            return
        report.findings.append(findings.rehearsal_failed(prefix, "authorize", step.answer))
        return
    step, refresh_token = client.redeem(token, code, report.client_id, secret, report.client_uri)
    report.steps.append(StepReport(step.name, step.ok, step.status, step.answer))
    if not step.ok:
        report.findings.append(findings.rehearsal_failed(prefix, "redeem", step.answer))
        return
    step = client.refresh(refresh or token, refresh_token, report.client_id, secret)
    report.steps.append(StepReport(step.name, step.ok, step.status, step.answer))
    if step.ok is False:
        report.findings.append(findings.rehearsal_failed(prefix, "refresh", step.answer))


def rehearsal_account(report: ProviderReport, login_hint: str | None, info: Mapping[str, Any]) -> str:
    if login_hint:
        return login_hint
    return PERSONAL_ACCOUNT if report.accounts == "personal" else str(info.get("admin_user") or PERSONAL_ACCOUNT)


# --- the whole check ---------------------------------------------------------------------------------

async def diagnose(session: Session, req: DoctorRequest, reports: list[ProviderReport],
                   secrets: dict[str, tuple[Secret | None, str | None]]) -> DoctorResult:
    result = DoctorResult(str(req.env_file), session.tenant_id, False, reports)
    apps: dict[str, dict[str, Any] | None] = {}
    checks: dict[tuple[str, Secret], SecretCheck] = {}
    endpoints = session.endpoints
    info = None
    if endpoints.custom_authority:
        info = await asyncio.to_thread(rehearsal.emulator_info, endpoints.authority_host,
                                       ca_file=endpoints.ca_file, timeout=session.connection.timeout)
    client = rehearsal.Rehearsal(ca_file=endpoints.ca_file, timeout=session.connection.timeout) if info else None
    names = emulator_names(endpoints.authority_host, info)
    try:
        for report in reports:
            if report.configured:
                report.findings += host_findings(report, names)
            if not report.client_id:
                continue
            app_id = report.client_id.strip().lower()
            if app_id not in apps:
                session.progress.step(f"Reading the app registration {app_id}")
                apps[app_id] = await session.graph.get_application(app_id=app_id, select=APP_SELECT)
            app = apps[app_id]
            if app is None:
                deleted = await session.graph.list_deleted_applications(
                    filter=f"appId eq '{app_id}'", select=["id", "appId", "deletedDateTime"])
                report.findings.append(findings.app_deleted(app_id, deleted[0].get("deletedDateTime")) if deleted
                                       else findings.app_not_found(app_id, report.keys[0].key, session.tenant_id))
            else:
                report.findings += registration_findings(report, app, session.tenant_id)
            secret, secret_id = secrets[report.provider]
            if app is not None and secret is not None:
                report.findings += secret_findings(report, app, secret, secret_id, req.warn_within)
                if (app_id, secret) not in checks:
                    session.progress.step("Trying the client secret at the token endpoint")
                    checks[app_id, secret] = await asyncio.to_thread(
                        try_secret, session, secret_credential(session, app_id, secret))
                check = checks[app_id, secret]
                report.secret_check = check.verdict
                report.findings += check_findings(report, check, app_id, session.tenant_id)
            if client is not None and info is not None:
                session.progress.step(f"Replaying Cypht's {report.label} sign-in against the emulator")
                result.rehearsed = True
                account = rehearsal_account(report, req.login_hint, info)
                # Cypht posts an empty client_secret when the key is empty.
                await asyncio.to_thread(rehearse, report, secret or Secret(""), endpoints.authority_host, names,
                                        account, client)
    finally:
        if client is not None:
            client.close()
    result.graph_requests = session.graph.requests_sent
    return result


def run_doctor(req: DoctorRequest, make_connection: Any, progress: Progress,
               environ: Mapping[str, str]) -> DoctorResult:
    if not req.env_file.is_file():
        raise InputError(f"{req.env_file} does not exist or is not a file (Cypht would show '.env file not "
                         "found' and use its defaults).", hint="Give Cypht's .env with --env-file.")
    # $VAR expansions are not filled in from this process's environment: it is the operator's (it may hold
    # the admin's AZURE_CLIENT_SECRET), not the one Cypht runs in, and a .env the web server user writes
    # could print any of it. A reference to the environment stays empty, as in an environment without it.
    doc = envdisk.load(req.env_file)
    values = doc.as_dict()
    url = next((uri for p in cypht.PROVIDERS
                if (uri := cypht.read_settings(p, values, environ)["CLIENT_URI"]).source != "default"
                and not cypht.client_uri_problems(uri.value)), None)
    reports = [read_provider(p, values, environ, req.login_hint, url.value if url else None) for p in req.providers]
    secrets: dict[str, tuple[Secret | None, str | None]] = {}
    for report in reports:
        s = cypht.read_settings(report.provider, values, environ)["CLIENT_SECRET"]
        recorded = values.get(cypht.provider_keys(report.provider).secret_id) if s.source == ".env" else None
        secrets[report.provider] = (Secret(s.value) if s.value else None, (recorded or "").lower() or None)
    hidden = sorted({environ[k.key] for r in reports for k in r.keys
                     if k.source == "environment" and len(environ.get(k.key, "")) >= 4}, key=len, reverse=True)
    if not any(r.client_id for r in reports):
        return DoctorResult(str(req.env_file), None, False, reports, hidden=hidden)
    conn: Connection = make_connection()

    async def main() -> DoctorResult:
        async with open_session(conn, progress) as session:
            return await diagnose(session, req, reports, secrets)

    result = asyncio.run(main())
    result.hidden = hidden
    return result
