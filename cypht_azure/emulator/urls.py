"""The route table: one regex per endpoint, the handler's name, and the request kind."""

from __future__ import annotations

import re
from dataclasses import dataclass

# An entity addressed by object id or by an OData alternate key: /applications/{id} or /applications(appId='..').
_KEY = r"(?:/(?P<id>[^/()']+)|\((?P<alt>{alts})=(?:'(?P<altval>(?:[^']|'')*)'|(?P<altraw>[^)]*))\))"
APP = r"/v1\.0/applications" + _KEY.format(alts="appId|uniqueName")
SP = r"/v1\.0/servicePrincipals" + _KEY.format(alts="appId")
FIC = r"/federatedIdentityCredentials(?:/(?P<fic>[^/()']+)|\(name='(?P<ficname>(?:[^']|'')*)'\))"
TENANT = r"/(?P<tenant>[^/]+)"


@dataclass(frozen=True)
class Route:
    methods: tuple[str, ...]
    pattern: re.Pattern[str]
    handler: str
    kind: str
    room: str  # which handler object: graph (responses.py), signin (signin.py), admin (admin.py)


def _r(methods: str, pattern: str, handler: str, kind: str = "graph", room: str | None = None) -> Route:
    default_room = {"admin": "admin", "authorize": "signin"}.get(kind, "graph")
    return Route(tuple(methods.split()), re.compile(pattern + r"$"), handler, kind, room or default_room)


ROUTES: list[Route] = [
    # identity platform (login.microsoftonline.com)
    _r("GET", TENANT + r"/v2\.0/\.well-known/openid-configuration", "openid_configuration", "openid"),
    _r("GET", TENANT + r"/\.well-known/openid-configuration", "openid_configuration", "openid"),
    _r("GET", r"/common/discovery/instance", "instance_discovery", "openid"),
    _r("GET", TENANT + r"/discovery/v2\.0/keys", "jwks", "openid"),
    _r("POST", TENANT + r"/oauth2/v2\.0/token", "token", "token"),
    _r("POST", TENANT + r"/oauth2/token", "token", "token"),
    _r("POST", TENANT + r"/oauth2/v2\.0/devicecode", "device_code", "devicecode"),
    # App Service's managed identity endpoint (IDENTITY_ENDPOINT + IDENTITY_HEADER)
    _r("GET", r"/msi/token", "managed_identity_token", "token"),
    # the authorization-code flow: v2 and login.live.com (signin.py, authorize.py)
    _r("GET POST", TENANT + r"/oauth2/v2\.0/authorize", "authorize", "authorize"),
    _r("GET POST", r"/oauth20_authorize\.srf", "live_authorize", "authorize"),
    _r("POST", r"/oauth20_token\.srf", "live_token", "token", room="signin"),
    _r("GET", r"/err\.srf", "live_error", "authorize"),
    # Azure Resource Manager, just enough for `az login --allow-no-subscriptions`
    _r("GET", r"/subscriptions", "arm_subscriptions", "arm"),
    _r("GET", r"/tenants", "arm_tenants", "arm"),
    # the emulator's own admin API (loopback only, or with the admin's token: admin.py)
    _r("GET", r"/_emulator/info", "admin_info", "admin"),
    _r("GET DELETE", r"/_emulator/log", "admin_log", "admin"),
    _r("GET DELETE", r"/_emulator/faults", "admin_faults", "admin"),
    _r("POST", r"/_emulator/faults/(?P<verb>[a-z_]+)", "admin_fault_verb", "admin"),
    _r("POST", r"/_emulator/devicelogin", "admin_device_login", "admin"),
    # Microsoft Graph v1.0
    _r("GET", r"/v1\.0/applications/\$count", "applications_count"),
    _r("GET POST", r"/v1\.0/applications", "applications"),
    _r("GET PATCH DELETE", APP, "application"),
    _r("POST", APP + r"/addPassword", "add_password_app"),
    _r("POST", APP + r"/removePassword", "remove_password_app"),
    _r("GET", APP + r"/owners", "owners_app"),
    _r("POST", APP + r"/owners/\$ref", "owner_add_app"),
    _r("DELETE", APP + r"/owners/(?P<owner>[^/]+)/\$ref", "owner_remove_app"),
    _r("GET POST", APP + r"/federatedIdentityCredentials", "federated_credentials"),
    _r("GET PATCH DELETE", APP + FIC, "federated_credential"),
    _r("GET POST", r"/v1\.0/servicePrincipals", "service_principals"),
    _r("GET PATCH DELETE", SP, "service_principal"),
    _r("POST", SP + r"/addPassword", "add_password_sp"),
    _r("POST", SP + r"/removePassword", "remove_password_sp"),
    _r("GET", SP + r"/owners", "owners_sp"),
    _r("POST", SP + r"/owners/\$ref", "owner_add_sp"),
    _r("DELETE", SP + r"/owners/(?P<owner>[^/]+)/\$ref", "owner_remove_sp"),
    _r("GET POST", r"/v1\.0/oauth2PermissionGrants", "grants"),
    _r("GET PATCH DELETE", r"/v1\.0/oauth2PermissionGrants/(?P<grant>[^/]+)", "grant"),
    # the SDK spells the type cast with Graph's "graph." alias
    _r("GET", r"/v1\.0/directory/deletedItems/(?:microsoft\.)?graph\.(?P<type>application|servicePrincipal)",
       "deleted_items"),
    _r("GET", r"/v1\.0/directory/deletedItems/(?P<deleted>[^/]+)/(?:microsoft\.)?graph\.(?:application|servicePrincipal)",
       "deleted_item"),
    _r("GET DELETE", r"/v1\.0/directory/deletedItems/(?P<deleted>[^/]+)", "deleted_item"),
    _r("POST", r"/v1\.0/directory/deletedItems/(?P<deleted>[^/]+)/restore", "restore_deleted_item"),
    _r("GET", r"/v1\.0/users/(?P<user>[^/]+)", "user"),
    _r("GET", r"/v1\.0/me", "me"),
    _r("GET", r"/v1\.0/organization", "organization"),
]


def kind_of_path(path: str) -> str:
    """The log kind of a path no route matched."""
    if path.startswith(("/v1.0", "/beta")):
        return "graph"
    if path.startswith("/_emulator"):
        return "admin"
    if path.startswith(("/subscriptions", "/tenants")):
        return "arm"
    if path.endswith("/authorize") or path.endswith(".srf"):
        return "authorize"
    if "/oauth2/" in path:
        return "token"
    return "openid"


def match(method: str, path: str) -> tuple[Route | None, re.Match[str] | None, bool]:
    """(route, match, path_known). ``path_known`` without a route means: wrong method."""
    path_known = False
    for route in ROUTES:
        m = route.pattern.match(path)
        if m is None:
            continue
        if method in route.methods:
            return route, m, True
        path_known = True
    return None, None, path_known
