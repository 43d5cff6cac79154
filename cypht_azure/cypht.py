"""Cypht's side of the contract: providers, `.env` keys, redirect-URI rules, the registration it needs.

Everything here is pure: no network, no files. The facts come from Cypht's own code
(`.env.example`, `config/oauth2.php`, `lib/dispatch.php`, `modules/nux/`) and Entra's
redirect-URI rules; see docs/how-it-works.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urlsplit

TAG = "cypht-azure"
# Password credentials the tool creates carry this display-name prefix, so that rotation
# can tell them from secrets someone else added to the same app.
SECRET_NAME_PREFIX = "cypht-azure"

PROVIDERS: dict[str, str] = {"outlook": "OUTLOOK", "office365": "OFFICE365"}

# Cypht's defaults for the endpoint keys (config/oauth2.php): the Live endpoints, which sign in
# personal Microsoft accounts only, and the only ones where Cypht's hard-coded `wl.imap` scope works.
DEFAULT_ENDPOINTS: dict[str, str] = {
    "AUTH_URI": "https://login.live.com/oauth20_authorize.srf",
    "TOKEN_URI": "https://login.live.com/oauth20_token.srf",
    "REFRESH_URI": "https://login.live.com/oauth20_token.srf",
}
# The identity platform's v2.0 endpoint behind each key, for audiences without personal accounts.
V2_ENDPOINT_PATHS: dict[str, str] = {"AUTH_URI": "authorize", "TOKEN_URI": "token", "REFRESH_URI": "token"}
LIVE_HOST = "login.live.com"
# Sign-in hosts of Entra's clouds (and their aliases): endpoints on other hosts are the admin's own.
DIRECTORY_LOGIN_HOSTS = frozenset({
    "login.microsoftonline.com", "login.windows.net", "login.microsoftonline.us", "login-us.microsoftonline.com",
    "login.chinacloudapi.cn", "login.partner.microsoftonline.cn",
})
SCOPE_NOTE = (
    "Cypht requests the Live scope wl.imap (hard-coded in modules/nux/services.php), which the v2.0 "
    "endpoints of work/school sign-in do not grant: until Cypht requests "
    "https://outlook.office.com/IMAP.AccessAsUser.All, SMTP.Send and offline_access instead, work and "
    "school accounts cannot add their mailbox in Cypht. The registration already has these permissions."
)
# The portal calls a password credential's keyId its "Secret ID"; Cypht ignores this key,
# the tool reads it to know exactly which credential `.env` holds.
SECRET_ID_SUFFIX = "CLIENT_SECRET_ID"

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
# Delegated Microsoft Graph permissions (ids from the permissions reference).
DELEGATED_SCOPES: dict[str, str] = {
    "IMAP.AccessAsUser.All": "652390e4-393a-48de-9484-05f9b1212954",
    "SMTP.Send": "258f6531-6087-4cc4-bb90-092c5fb3ed3f",
    "offline_access": "7427e0e9-2fba-42fe-b0c0-848c9e6a8182",
    "openid": "37f7f235-527c-4136-accd-4a02d197296e",
    "email": "64a6cdd6-aab1-4aaf-94b8-3cc8405e90d0",
}

PERSONAL_AUDIENCES = frozenset({"AzureADandPersonalMicrosoftAccount", "PersonalMicrosoftAccount"})
AUDIENCES: dict[str, str] = {
    # short name -> Graph's signInAudience
    "any": "AzureADandPersonalMicrosoftAccount",
    "personal": "PersonalMicrosoftAccount",
    "single-tenant": "AzureADMyOrg",
    "multi-tenant": "AzureADMultipleOrgs",
}
DEFAULT_AUDIENCE = "AzureADandPersonalMicrosoftAccount"

MAX_URI_LENGTH = 256
# http:// is allowed for these alone (graph.md §7.1: 127.0.0.1 through the API, not in the portal).
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1"})
FORBIDDEN_URI_CHARS = "!$'(),;"
MAX_NAME_LENGTH = {True: 90, False: 120}  # keyed by "audience includes personal accounts"


class InvalidInput(ValueError):
    """Input that Entra or Cypht would refuse. The message names the problem and the fix."""


@dataclass(frozen=True)
class ProviderKeys:
    """The `.env` key names of one Cypht provider block."""

    prefix: str

    @property
    def client_id(self) -> str:
        return f"{self.prefix}_CLIENT_ID"

    @property
    def client_secret(self) -> str:
        return f"{self.prefix}_CLIENT_SECRET"

    @property
    def secret_id(self) -> str:
        return f"{self.prefix}_{SECRET_ID_SUFFIX}"

    @property
    def client_uri(self) -> str:
        return f"{self.prefix}_CLIENT_URI"

    def endpoint(self, name: str) -> str:
        return f"{self.prefix}_{name}"

    def all(self) -> list[str]:
        return [self.client_id, self.client_secret, self.secret_id, self.client_uri] + [
            self.endpoint(n) for n in DEFAULT_ENDPOINTS
        ]


def provider_keys(provider: str) -> ProviderKeys:
    return ProviderKeys(PROVIDERS[provider])


def parse_providers(value: str) -> list[str]:
    value = value.strip().lower()
    if value == "both":
        return list(PROVIDERS)
    if value in PROVIDERS:
        return [value]
    raise InvalidInput(f"--provider must be outlook, office365 or both, not {value!r}.")


def parse_audience(value: str) -> str:
    """Accept the short names or Graph's own signInAudience values (case-insensitive)."""
    v = value.strip()
    if v.lower() in AUDIENCES:
        return AUDIENCES[v.lower()]
    for graph_name in AUDIENCES.values():
        if v.lower() == graph_name.lower():
            return graph_name
    choices = ", ".join(f"{k} ({g})" for k, g in AUDIENCES.items())
    raise InvalidInput(f"--audience {value!r} is not a sign-in audience. Choose one of: {choices}.")


def short_audience(audience: str) -> str:
    """Graph's signInAudience -> the --audience name an admin types."""
    return next((short for short, graph_name in AUDIENCES.items() if graph_name == audience), audience)


def includes_personal(audience: str) -> bool:
    return audience in PERSONAL_AUDIENCES


@dataclass(frozen=True)
class SignInEndpoints:
    """The endpoint keys that fit an app's audience, in the cloud and tenant it lives in.

    Audiences that accept personal accounts keep Cypht's Live endpoints, the only ones where its
    `wl.imap` scope works. Directory-only audiences cannot sign in at login.live.com at all, so
    they get the v2.0 endpoints of the cloud's sign-in host: the tenant for a single-tenant app,
    `organizations` for a multi-tenant one.
    """

    audience: str
    login_host: str
    tenant: str
    app_id: str = ""
    domain: str = ""  # the app's publisherDomain: a tenant segment that names the home tenant too
    rehearsal_base: str | None = None  # an emulator's base URL: the same endpoints, served there

    def wanted(self) -> dict[str, str]:
        if includes_personal(self.audience):
            return live_endpoints_at(self.rehearsal_base) if self.rehearsal_base else dict(DEFAULT_ENDPOINTS)
        segment = self.tenant if self.audience == "AzureADMyOrg" else "organizations"
        base = self.rehearsal_base or f"https://{self.login_host}"
        return {name: f"{base}/{segment}/oauth2/v2.0/{path}" for name, path in V2_ENDPOINT_PATHS.items()}

    def problem(self, name: str, url: str) -> str | None:
        """Why the endpoint `url` in key `*_{name}` cannot sign in this app's users; None when it fits
        (or is on a host cypht-azure does not know, such as the admin's own proxy)."""
        host = (urlsplit(url.strip()).hostname or "").lower()
        if host != LIVE_HOST and host not in DIRECTORY_LOGIN_HOSTS:
            return None
        aliases = {"login.windows.net", "login.microsoftonline.com"}
        if host != LIVE_HOST and host != self.login_host and {host, self.login_host} != aliases:
            return f"it is on {host}, but the app lives in the cloud whose sign-in host is {self.login_host}"
        invalid = endpoint_problem(url.strip(), V2_ENDPOINT_PATHS[name])
        if invalid:
            return invalid
        home = {self.tenant.lower(), self.domain.lower()} - {""}
        return audience_refusal(parse_endpoint(url.strip()), self.audience, self.app_id or "<client ID>", home)


def scope_note(audience: str) -> str | None:
    """What the admin must know about an app Cypht, as shipped, cannot use for its users."""
    return None if includes_personal(audience) else SCOPE_NOTE


def redirect_uri_for(url: str) -> str:
    """Cypht's base URL -> the redirect URI to register: `https://host[/path]/`, no query.

    Cypht routes a request without a page parameter to its home page, which runs the OAuth
    callback, so the bare base URL works and is the only form personal-account apps accept.
    A URL that names Cypht's front controller (`…/index.php`) is kept as it is: a slash after it
    would make the web server look for `index.php/` (PATH_INFO), which not every setup serves.
    """
    raw = url.strip()
    if not raw:
        raise InvalidInput("--url is empty. Give Cypht's public base URL, e.g. https://mail.example.com")
    if "://" not in raw:
        raise InvalidInput(
            f"--url {shown(raw)!r} has no scheme. Give Cypht's public base URL with https://, "
            "e.g. https://mail.example.com"
        )
    parts = urlsplit(raw)
    if parts.query or raw.endswith("?"):
        raise InvalidInput(
            f"--url {shown(raw)!r} contains a query string. Give Cypht's base URL without '?page=home': "
            "Cypht sends a request without a page parameter to its home page, which runs the OAuth "
            "callback, and Entra refuses query strings for apps that allow personal Microsoft accounts."
        )
    if parts.fragment or "#" in raw:
        raise InvalidInput(f"--url {shown(raw)!r} contains '#'. Give Cypht's base URL without a fragment.")
    if not parts.hostname:
        raise InvalidInput(f"--url {shown(raw)!r} has no host name.")
    problem = _url_shape_problem(parts)
    if problem:
        raise InvalidInput(f"--url {shown(raw)!r}: {problem}.")
    path = parts.path or "/"
    if not path.endswith("/") and not path.lower().endswith(".php"):
        path += "/"
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{path}"


def shown(url: str) -> str:
    """The URL as messages may show it: a password typed into it is not repeated."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()


def _url_shape_problem(parts: SplitResult) -> str | None:
    """What in a URL's authority or path would end up in the registration and in `.env` wrongly."""
    if "@" in parts.netloc:
        return ("it contains a user name or password before '@', which would be stored in the registration "
                "and in .env; give the URL without them")
    host = parts.hostname or ""
    if host.endswith("."):
        return f"the host name {host!r} ends in a dot; give it without the dot, as browsers show it"
    if "//" in parts.path:
        return "its path contains '//'; give the path with single slashes"
    if host == "::1":
        return ("Entra does not support the IPv6 loopback [::1] in redirect URIs; use http://localhost or "
                "http://127.0.0.1")
    return None


_HOST_SAFE = re.compile(r"[^a-z0-9-]+")


def unique_name_for(redirect_uri: str) -> str:
    """Stable idempotency key for the app serving this Cypht URL (Graph's `uniqueName`)."""
    parts = urlsplit(redirect_uri)
    host = _HOST_SAFE.sub("-", (parts.hostname or "cypht").lower()).strip("-")[:60]
    import hashlib  # here: OpenSSL's load is a tenth of `--help`'s own imports

    digest = hashlib.sha256(redirect_uri.encode()).hexdigest()[:10]
    return f"cypht-azure-{host}-{digest}"


def default_display_name(redirect_uri: str) -> str:
    """`Cypht webmail (host[:port][/path])`: two Cypht installations on one host get different names."""
    parts = urlsplit(redirect_uri)
    path = parts.path.rstrip("/")
    port = f":{parts.port}" if parts.port else ""
    return f"Cypht webmail ({parts.hostname}{port}{path})"


def redirect_uri_problems(uri: str, audience: str) -> list[str]:
    """Why Entra or Cypht would refuse this redirect URI (empty when it is fine)."""
    problems: list[str] = []
    if len(uri) > MAX_URI_LENGTH:
        problems.append(f"it is {len(uri)} characters long; Entra accepts at most {MAX_URI_LENGTH}")
    if any(c.isspace() for c in uri):
        problems.append("it contains white space, which Entra refuses and Cypht does not encode")
    bad = sorted({c for c in uri if c in FORBIDDEN_URI_CHARS})
    if bad:
        problems.append(f"it contains {' '.join(bad)}, which Entra does not support in redirect URIs")
    if "&" in uri:
        problems.append("it contains '&', which breaks the authorize URL Cypht builds (it does not encode it)")
    if "#" in uri:
        problems.append("it contains '#', which breaks the authorize URL Cypht builds and Entra refuses")
    if "*" in uri:
        problems.append("it contains a wildcard, which Entra refuses for these apps")
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in ("https", "http") or not host:
        problems.append("it is not an absolute https:// URL")
    elif scheme == "http" and host not in LOOPBACK_HOSTS:
        problems.append("http:// is allowed only for localhost and 127.0.0.1; use https://")
    if host:
        shape = _url_shape_problem(parts)
        if shape:
            problems.append(shape)
    if parts.query and includes_personal(audience):
        problems.append(
            "it has a query string, which Entra refuses when personal Microsoft accounts may sign in; "
            "register the bare base URL (Cypht routes it to the home page, which handles the callback)"
        )
    return problems


def validate_redirect_uris(uris: list[str], audience: str) -> None:
    if not uris:
        raise InvalidInput("No redirect URI: give --url (or --redirect-uri).")
    for uri in uris:
        problems = redirect_uri_problems(uri, audience)
        if problems:
            raise InvalidInput(f"Redirect URI {shown(uri)!r} is invalid: " + "; ".join(problems) + ".")


def validate_display_name(name: str, audience: str) -> None:
    limit = MAX_NAME_LENGTH[includes_personal(audience)]
    if not name.strip():
        raise InvalidInput("--name is empty.")
    if len(name) > limit:
        raise InvalidInput(
            f"--name is {len(name)} characters long; Entra allows at most {limit} for this audience."
        )


def required_resource_access() -> list[dict[str, object]]:
    return [
        {
            "resourceAppId": GRAPH_APP_ID,
            "resourceAccess": [{"id": i, "type": "Scope"} for i in DELEGATED_SCOPES.values()],
        }
    ]


def desired_registration(
    *, display_name: str, unique_name: str, audience: str, redirect_uris: list[str], url: str
) -> dict[str, object]:
    """The application body cypht-azure creates (Graph property names)."""
    body: dict[str, object] = {
        "displayName": display_name,
        "signInAudience": audience,
        "web": {"redirectUris": list(redirect_uris)},
        "requiredResourceAccess": required_resource_access(),
        "tags": [TAG],
        "notes": f"Cypht webmail at {url}: Outlook and Office365 OAuth. Managed by cypht-azure ({unique_name}).",
    }
    if includes_personal(audience):
        body["api"] = {"requestedAccessTokenVersion": 2}
    return body


def merge_required_access(current: list[dict[str, object]]) -> list[dict[str, object]] | None:
    """Add our delegated Graph scopes to an existing requiredResourceAccess; None when nothing is missing."""
    merged = [dict(entry) for entry in current]
    graph = next((e for e in merged if e.get("resourceAppId") == GRAPH_APP_ID), None)
    if graph is None:
        merged.extend(required_resource_access())
        return merged
    have = list(graph.get("resourceAccess") or [])  # type: ignore[call-overload]
    have_ids = {a.get("id") for a in have if a.get("type") == "Scope"}
    missing = [i for i in DELEGATED_SCOPES.values() if i not in have_ids]
    if not missing:
        return None
    graph["resourceAccess"] = have + [{"id": i, "type": "Scope"} for i in missing]
    return merged


# --------------------------------------------------------------------------------------------------
# How Cypht reads its settings and builds its sign-in requests (lib/environment.php, config/oauth2.php,
# lib/oauth2.php, modules/nux/services.php). Used by `doctor` to replay exactly what Cypht does.
# --------------------------------------------------------------------------------------------------

SCOPE = "wl.imap"  # hard-coded for both providers in modules/nux/services.php
STATE = "nux_authorization"  # fixed: the home page handler acts only on this state
DEFAULT_CLIENT_URI = "http://localhost/?page=home"
def live_endpoints_at(base_url: str) -> dict[str, str]:
    """The login.live.com endpoint keys Cypht's defaults use, served at another base URL (an emulator's)."""
    base = base_url.rstrip("/")
    return {"AUTH_URI": f"{base}/oauth20_authorize.srf", "TOKEN_URI": f"{base}/oauth20_token.srf",
            "REFRESH_URI": f"{base}/oauth20_token.srf"}


def emulator_url_problem(url: str) -> str | None:
    """Why --emulator-url is not a base URL Cypht could be pointed at (None when it is)."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        return "it must be an https:// URL with a host name, e.g. https://cypht-emulator:8443"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return "it must be the emulator's base URL, without a path or query"
    return None


SETTING_DEFAULTS: dict[str, str] = {
    "CLIENT_ID": "", "CLIENT_SECRET": "", "CLIENT_URI": DEFAULT_CLIENT_URI, **DEFAULT_ENDPOINTS,
}
PROVIDER_LABELS: dict[str, str] = {"outlook": "Outlook.com", "office365": "Office365"}
MSA_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"


@dataclass(frozen=True)
class Setting:
    """One value as Cypht's `env($key, $default)` returns it, and where it came from."""

    key: str
    value: str = field(repr=False)  # may be the client secret: never printed
    source: str  # "environment" | ".env" | "default"
    in_file: bool  # .env assigns it
    shadowed: bool  # the process environment sets it too, so symfony/dotenv ignores the file's value
    differs: bool  # ... and the two values differ


def read_setting(key: str, default: str, file_values: Mapping[str, str], environ: Mapping[str, str]) -> Setting:
    """symfony/dotenv's populate() never overrides a variable the process already has (unless Dotenv
    itself set it, as listed in SYMFONY_DOTENV_VARS); Cypht's env() is `getenv($key) ?: $default`, so an
    empty value or "0" gives the default."""
    loaded_by_dotenv = set((environ.get("SYMFONY_DOTENV_VARS") or "").split(","))
    in_env = key in environ and key not in loaded_by_dotenv
    in_file = key in file_values
    raw = environ[key] if in_env else file_values.get(key, "")
    if raw not in ("", "0"):
        value, source = raw, "environment" if in_env else ".env"
    else:
        value, source = default, "default"
    shadowed = in_env and in_file
    return Setting(key, value, source, in_file, shadowed, shadowed and environ[key] != file_values[key])


def read_settings(provider: str, file_values: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, Setting]:
    """The six values config/oauth2.php gives one provider, by key suffix (CLIENT_ID … REFRESH_URI)."""
    prefix = PROVIDERS[provider]
    return {suffix: read_setting(f"{prefix}_{suffix}", default, file_values, environ)
            for suffix, default in SETTING_DEFAULTS.items()}


def authorize_url(auth_uri: str, client_id: str, client_uri: str, login_hint: str | None) -> str:
    """The URL behind Cypht's Enable button (lib/oauth2.php request_authorization_url): this order,
    nothing URL-encoded, Google's approval_prompt/access_type included."""
    url = (f"{auth_uri}?response_type=code&scope={SCOPE}&state={STATE}&approval_prompt=force"
           f"&access_type=offline&client_id={client_id}&redirect_uri={client_uri}")
    return url if login_hint is None else f"{url}&login_hint={login_hint}"


def client_uri_problems(uri: str) -> list[str]:
    """What breaks the authorize URL Cypht builds from CLIENT_URI (it does not encode it)."""
    problems = []
    if "&" in uri:
        problems.append("it contains '&', which ends redirect_uri early in the authorize URL Cypht builds")
    if "#" in uri:
        problems.append("it contains '#', which cuts the authorize URL Cypht builds")
    if any(c.isspace() for c in uri):
        problems.append("it contains white space, which Cypht does not encode")
    parts = urlsplit(uri)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        problems.append("it is not an absolute http(s) URL")
    return problems


@dataclass(frozen=True)
class Endpoint:
    """What an *_AUTH_URI / *_TOKEN_URI / *_REFRESH_URI value names."""

    family: str  # "live" (login.live.com), "v2" (/{tenant}/oauth2/v2.0/), "v1" (/{tenant}/oauth2/), "unknown"
    kind: str  # "authorize", "token" or "" (unknown)
    tenant: str | None = None  # v1/v2: common, organizations, consumers, a tenant ID or domain

    @property
    def accounts(self) -> str:
        """Who signs in there: "personal", "work" or "both"."""
        if self.family == "live" or (self.tenant or "").lower() in ("consumers", MSA_TENANT_ID):
            return "personal"
        if (self.tenant or "").lower() == "common":
            return "both"
        return "work"

    def describe(self) -> str:
        if self.family == "live":
            return "Microsoft account (login.live.com)"
        if self.family in ("v1", "v2"):
            return f"Microsoft identity platform {'v2.0' if self.family == 'v2' else 'v1'}, /{self.tenant}"
        return "unknown"


_V2_PATH = re.compile(r"/(?P<tenant>[^/]+)/oauth2/v2\.0/(?P<kind>authorize|token)/?")
_V1_PATH = re.compile(r"/(?P<tenant>[^/]+)/oauth2/(?P<kind>authorize|token)/?")
_LIVE_PATHS = {"/oauth20_authorize.srf": "authorize", "/oauth20_token.srf": "token"}


def parse_endpoint(uri: str) -> Endpoint:
    path = urlsplit(uri).path
    if path in _LIVE_PATHS:
        return Endpoint("live", _LIVE_PATHS[path])
    for family, pattern in (("v2", _V2_PATH), ("v1", _V1_PATH)):
        m = pattern.fullmatch(path)
        if m:
            return Endpoint(family, m.group("kind"), m.group("tenant"))
    return Endpoint("unknown", "")


def endpoint_problem(uri: str, expected_kind: str) -> str | None:
    """Why Cypht cannot use this value as its authorize or token endpoint (None when it can)."""
    parts = urlsplit(uri)
    if parts.scheme.lower() != "https" or not parts.hostname:
        return "it is not an https:// URL"
    if parts.query or "?" in uri:
        return "it has a query string, and Cypht appends its own '?…' to it"
    ep = parse_endpoint(uri)
    if ep.family == "unknown":
        return ("it is neither a login.live.com endpoint (/oauth20_authorize.srf, /oauth20_token.srf) nor a "
                "Microsoft identity platform v2.0 one (/{tenant}/oauth2/v2.0/authorize or /token)")
    if ep.family == "v1":
        return "it is a v1 endpoint, which needs a 'resource' parameter Cypht never sends"
    if ep.kind != expected_kind:
        return f"it is a {ep.kind} endpoint where Cypht needs the {expected_kind} endpoint"
    return None


def endpoints_match(auth_uri: str, token_uri: str) -> bool:
    """A code is redeemed only where it was issued: same host, family and tenant."""
    a, t = parse_endpoint(auth_uri), parse_endpoint(token_uri)
    same_host = (urlsplit(auth_uri).netloc.lower() == urlsplit(token_uri).netloc.lower())
    return same_host and a.family == t.family and (a.tenant or "").lower() == (t.tenant or "").lower()


def audience_refusal(ep: Endpoint, audience: str, app_id: str, home: set[str]) -> str | None:
    """What Entra answers when this endpoint signs in accounts the app's signInAudience does not accept
    (signin.md §2.6, §4.4); None when they fit. ``home``: the app's tenant ID and verified domain, lowercase."""
    personal_only = audience == "PersonalMicrosoftAccount"
    accepts_personal = includes_personal(audience)
    tenant = (ep.tenant or "").lower()
    if ep.accounts == "personal":
        if accepts_personal:
            return None
        if ep.family == "live":
            return ("unauthorized_client: The client does not exist or is not enabled for consumers (Live's error "
                    "page, no redirect).")
        return (f"AADSTS9002332: Application '{app_id}' is configured for use by Microsoft Entra users only. "
                "Please do not use the /consumers endpoint to serve this request.")
    if personal_only:
        if tenant == "common":
            return ("invalid_request: The request is not valid for the application's 'userAudience' configuration. "
                    "In order to use /common/ endpoint, the application must not be configured with 'Consumer' as "
                    "the user audience.")
        return (f"AADSTS9002331: Application '{app_id}' is configured for use by Microsoft Account users only. "
                "Please use the /consumers endpoint to serve this request.")
    if audience == "AzureADMyOrg":
        if tenant in ("common", "organizations"):
            return (f"AADSTS50194: Application '{app_id}' is not configured as a multi-tenant application. Usage "
                    f"of the /{tenant} endpoint is not supported for such applications.")
        if tenant not in home:
            return f"AADSTS700016: Application with identifier '{app_id}' was not found in the directory '{tenant}'."
    return None


def scope_verdict(ep: Endpoint) -> str:
    """Whether Cypht's `wl.imap` works at this endpoint: "ok", "invalid" or "unverified"."""
    if ep.family == "live":
        return "ok"
    if ep.accounts == "personal":
        return "unverified"  # signin.md §2.7: the MSA backend may tolerate wl.* on v2.0
    return "invalid"
