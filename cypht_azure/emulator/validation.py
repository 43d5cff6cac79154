"""Graph's validation rules for applications and related objects (graph.md §2, §5, §7)."""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import urlsplit

from . import exceptions as exc
from .schema import (
    APPLICATION_COMPLEX,
    APPLICATION_PROPERTIES,
    PERSONAL_AUDIENCES,
    SERVICE_PRINCIPAL_PROPERTIES,
    SIGN_IN_AUDIENCES,
)

FORBIDDEN_REDIRECT_CHARS = set("!$'(),;")
FIC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,119}$")


def is_guid(value: object) -> bool:
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def require_guid(value: str) -> str:
    if not is_guid(value):
        raise exc.InvalidObjectIdentifier(value)
    return value.lower()


def drop_odata_annotations(body: dict[str, Any]) -> dict[str, Any]:
    """``@odata.type`` and friends are annotations, not properties."""
    return {k: v for k, v in body.items() if "@" not in k}


def check_known_properties(
    body: dict[str, Any], allowed: frozenset[str], type_name: str, complex_types: dict[str, set[str]] | None = None
) -> None:
    for key, value in body.items():
        if key not in allowed:
            raise exc.UnknownProperty(key, type_name)
        if complex_types and key in complex_types and isinstance(value, dict):
            for sub in value:
                if "@" not in sub and sub not in complex_types[key]:
                    raise exc.UnknownProperty(sub, f"microsoft.graph.{_complex_type_name(key)}")


def _complex_type_name(prop: str) -> str:
    return {
        "api": "apiApplication", "info": "informationalUrl", "web": "webApplication",
        "spa": "spaApplication", "publicClient": "publicClientApplication",
        "parentalControlSettings": "parentalControlSettings",
    }[prop]


def check_application_body(body: dict[str, Any]) -> None:
    check_known_properties(body, APPLICATION_PROPERTIES, "microsoft.graph.application", APPLICATION_COMPLEX)


def check_service_principal_body(body: dict[str, Any]) -> None:
    check_known_properties(body, SERVICE_PRINCIPAL_PROPERTIES, "microsoft.graph.servicePrincipal")


def _redirect_uri_ok(uri: object, platform: str, personal: bool) -> bool:
    if not isinstance(uri, str) or not uri or len(uri) > 256:
        return False
    if FORBIDDEN_REDIRECT_CHARS & set(uri):
        return False
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if not scheme:
        return False
    if personal and ("*" in uri or parts.query):
        return False
    host = (parts.hostname or "").lower()
    if scheme == "http":
        return host in ("localhost", "127.0.0.1")
    if scheme == "https":
        return bool(host)
    # Custom schemes (msal{appId}://auth, urn:ietf:wg:oauth:2.0:oob) are for native clients only.
    return platform == "publicClient"


def validate_application(app: dict[str, Any]) -> None:
    """Rules on the whole (merged) application object."""
    audience = app.get("signInAudience")
    if audience not in SIGN_IN_AUDIENCES:
        raise exc.InvalidValue("signInAudience")
    personal = audience in PERSONAL_AUDIENCES

    name = app.get("displayName")
    if not isinstance(name, str) or not name.strip() or len(name) > (90 if personal else 120):
        raise exc.InvalidValue("displayName")

    api = app.get("api") or {}
    version = api.get("requestedAccessTokenVersion")
    if version not in (None, 1, 2):
        raise exc.InvalidValue("api")
    if personal and version != 2:
        raise exc.InvalidAccessTokenVersion()

    tags = app.get("tags") or []
    if not isinstance(tags, list):
        raise exc.InvalidValue("tags")
    seen: set[str] = set()
    for tag in tags:
        if not isinstance(tag, str) or not 1 <= len(tag) <= 256 or any(ch.isspace() for ch in tag):
            raise exc.InvalidValue("tags")
        if tag.lower() in seen:
            raise exc.InvalidValue("tags")
        seen.add(tag.lower())

    total = 0
    for platform in ("web", "spa", "publicClient"):
        section = app.get(platform) or {}
        if not isinstance(section, dict):
            raise exc.InvalidValue(platform)
        uris = section.get("redirectUris") or []
        if not isinstance(uris, list) or not all(_redirect_uri_ok(u, platform, personal) for u in uris):
            raise exc.InvalidValue(platform)
        total += len(uris)
    if total > (100 if personal else 256):
        raise exc.InvalidValue("web")

    identifier_uris = app.get("identifierUris") or []
    if not isinstance(identifier_uris, list) or (personal and len(identifier_uris) > 50):
        raise exc.InvalidValue("identifierUris")
    for uri in identifier_uris:
        if not isinstance(uri, str) or not uri or len(uri) > (120 if personal else 255):
            raise exc.InvalidValue("identifierUris")
        if personal and (uri.lower().startswith("urn:") or "*" in uri or "?" in uri or "#" in uri):
            raise exc.InvalidValue("identifierUris")

    rra = app.get("requiredResourceAccess") or []
    if not isinstance(rra, list) or len(rra) > 50:
        raise exc.InvalidValue("requiredResourceAccess")
    permissions = 0
    for entry in rra:
        if not isinstance(entry, dict) or not is_guid(entry.get("resourceAppId")):
            raise exc.InvalidValue("requiredResourceAccess")
        access = entry.get("resourceAccess") or []
        if not isinstance(access, list) or (personal and len(access) > 30):
            raise exc.InvalidValue("requiredResourceAccess")
        for item in access:
            if not isinstance(item, dict) or not is_guid(item.get("id")) or item.get("type") not in ("Scope", "Role"):
                raise exc.InvalidValue("requiredResourceAccess")
        permissions += len(access)
    if permissions > (200 if personal else 400):
        raise exc.InvalidValue("requiredResourceAccess")

    collections = sum(
        len(app.get(k) or []) for k in ("identifierUris", "keyCredentials", "passwordCredentials", "appRoles", "tags")
    ) + total + permissions
    if collections > 1000:
        raise exc.ResourceSizeExceeded()


def validate_federated_credential(fic: dict[str, Any]) -> None:
    name = fic.get("name")
    if not isinstance(name, str) or not FIC_NAME.match(name):
        raise exc.InvalidValue("name", "FederatedIdentityCredential")
    for prop in ("issuer", "subject"):
        value = fic.get(prop)
        if not isinstance(value, str) or not value or len(value) > 600:
            raise exc.InvalidValue(prop, "FederatedIdentityCredential")
    audiences = fic.get("audiences")
    if (
        not isinstance(audiences, list)
        or len(audiences) != 1
        or not isinstance(audiences[0], str)
        or not audiences[0]
        or len(audiences[0]) > 600
    ):
        raise exc.InvalidValue("audiences", "FederatedIdentityCredential")
    description = fic.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > 600):
        raise exc.InvalidValue("description", "FederatedIdentityCredential")
