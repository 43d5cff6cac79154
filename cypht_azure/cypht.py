"""Cypht's side of the contract: providers, `.env` keys, redirect-URI rules, the registration it needs.

Everything here is pure: no network, no files. The facts come from Cypht's own code
(`.env.example`, `config/oauth2.php`, `lib/dispatch.php`, `modules/nux/`) and Entra's
redirect-URI rules; see docs/how-it-works.md.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

TAG = "cypht-azure"
# Password credentials the tool creates carry this display-name prefix, so that rotation
# can tell them from secrets someone else added to the same app.
SECRET_NAME_PREFIX = "cypht-azure"

PROVIDERS: dict[str, str] = {"outlook": "OUTLOOK", "office365": "OFFICE365"}

# Cypht's defaults for the endpoint keys (config/oauth2.php); written only when missing.
DEFAULT_ENDPOINTS: dict[str, str] = {
    "AUTH_URI": "https://login.live.com/oauth20_authorize.srf",
    "TOKEN_URI": "https://login.live.com/oauth20_token.srf",
    "REFRESH_URI": "https://login.live.com/oauth20_token.srf",
}
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


def includes_personal(audience: str) -> bool:
    return audience in PERSONAL_AUDIENCES


def redirect_uri_for(url: str) -> str:
    """Cypht's base URL -> the redirect URI to register: `https://host[/path]/`, no query.

    Cypht routes a request without a page parameter to its home page, which runs the OAuth
    callback, so the bare base URL works and is the only form personal-account apps accept.
    """
    raw = url.strip()
    if not raw:
        raise InvalidInput("--url is empty. Give Cypht's public base URL, e.g. https://mail.example.com")
    if "://" not in raw:
        raise InvalidInput(
            f"--url {raw!r} has no scheme. Give Cypht's public base URL with https://, "
            "e.g. https://mail.example.com"
        )
    parts = urlsplit(raw)
    if parts.query or raw.endswith("?"):
        raise InvalidInput(
            f"--url {raw!r} contains a query string. Give Cypht's base URL without '?page=home': "
            "Cypht sends a request without a page parameter to its home page, which runs the OAuth "
            "callback, and Entra refuses query strings for apps that allow personal Microsoft accounts."
        )
    if parts.fragment or "#" in raw:
        raise InvalidInput(f"--url {raw!r} contains '#'. Give Cypht's base URL without a fragment.")
    if not parts.hostname:
        raise InvalidInput(f"--url {raw!r} has no host name.")
    path = parts.path or "/"
    if not path.endswith("/"):
        path += "/"
    netloc = parts.netloc.lower() if not parts.username else parts.netloc
    return f"{parts.scheme.lower()}://{netloc}{path}"


_HOST_SAFE = re.compile(r"[^a-z0-9-]+")


def unique_name_for(redirect_uri: str) -> str:
    """Stable idempotency key for the app serving this Cypht URL (Graph's `uniqueName`)."""
    parts = urlsplit(redirect_uri)
    host = _HOST_SAFE.sub("-", (parts.hostname or "cypht").lower()).strip("-")[:60]
    digest = hashlib.sha256(redirect_uri.encode()).hexdigest()[:10]
    return f"cypht-azure-{host}-{digest}"


def default_display_name(redirect_uri: str) -> str:
    parts = urlsplit(redirect_uri)
    path = parts.path.rstrip("/")
    return f"Cypht webmail ({parts.hostname}{path})"


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
    elif scheme == "http" and host != "localhost":
        problems.append("http:// is allowed only for localhost; use https://")
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
            raise InvalidInput(f"Redirect URI {uri!r} is invalid: " + "; ".join(problems) + ".")


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
