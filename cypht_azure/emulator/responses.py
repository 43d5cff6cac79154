"""HTTP in and out: parse the request, call the directory or token service, render Graph's answer.

Each public method is named in urls.py and takes (request, route match, caller).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from . import exceptions as exc
from . import schema
from .directory import Caller, Key, Target
from .identity import TokenService
from .models import Directory
from .query import encode_skip_token, parse_list_query, parse_select, project, run_list
from .wire import GRAPH_JSON, LOGIN_JSON, Request, Response, basic_credentials, graph_headers, login_headers

Match = re.Match[str]
GRANT_PROPERTIES = frozenset({"clientId", "consentType", "id", "principalId", "resourceId", "scope"})
FIC_PROPERTIES = frozenset({"audiences", "description", "id", "issuer", "name", "subject"})
USER_PROPERTIES = frozenset(schema.user_body("", "", ""))


def _unquote_key(value: str) -> str:
    return value.replace("''", "'")


def entity_key(m: Match) -> Key:
    if m.group("id") is not None:
        return ("id", m.group("id"))
    if m.group("altraw") is not None:
        raise exc.BadRequest("Bad Request - Error in query syntax.", code="BadRequest")
    return (m.group("alt"), _unquote_key(m.group("altval")))


def render_directory_object(obj: dict[str, Any], select: list[str] | None = None) -> dict[str, Any]:
    out = schema.strip_private(obj)
    if select and "keyCredentials" in select and obj.get("keyCredentials"):
        # The certificate is returned only when keyCredentials is explicitly selected.
        out["keyCredentials"] = [
            {**{k: v for k, v in c.items() if not k.startswith("_")}, "key": c.get("_key")}
            for c in obj["keyCredentials"]
        ]
    return project(out, select)


class Handlers:
    def __init__(self, directory: Directory, tokens: TokenService) -> None:
        self.directory = directory
        self.tokens = tokens

    # ------------------------------------------------------------ rendering helpers

    @staticmethod
    def _context(req: Request, fragment: str) -> str:
        return f"{req.base_url}/v1.0/$metadata#{fragment}"

    @staticmethod
    def _ok(req: Request, payload: dict[str, Any], status: int = 200, units: int = 1,
            location: str | None = None) -> Response:
        headers = graph_headers(req, units)
        if location is not None:
            headers["Location"] = location
        return Response.json(status, payload, GRAPH_JSON, **headers)

    @staticmethod
    def _no_content(req: Request) -> Response:
        return Response.empty(204, **graph_headers(req, 1))

    def _location(self, req: Request, object_id: str, type_name: str) -> str:
        return f"{req.base_url}/v2/{self.directory.tenant_id}/directoryObjects/{object_id}/{type_name}"

    def _entity(self, req: Request, set_name: str, obj: dict[str, Any], select: list[str] | None = None,
                status: int = 200, location: str | None = None) -> Response:
        fragment = f"{set_name}({','.join(select)})/$entity" if select else f"{set_name}/$entity"
        payload = {"@odata.context": self._context(req, fragment), **render_directory_object(obj, select)}
        return self._ok(req, payload, status, location=location)

    def _collection(self, req: Request, set_name: str, items: list[dict[str, Any]], known: frozenset[str],
                    type_name: str) -> Response:
        q = parse_list_query(req.query, req.headers, known, type_name)
        page, next_state, total = run_list(items, q)
        fragment = f"{set_name}({','.join(q.select)})" if q.select else set_name
        payload: dict[str, Any] = {"@odata.context": self._context(req, fragment)}
        if q.count:
            payload["@odata.count"] = total
        if next_state is not None:
            params = {k: v for k, v in req.query.items() if k != "$skiptoken"}
            params["$skiptoken"] = encode_skip_token(next_state)
            path = urlsplit(req.raw_path).path
            while "//" in path:
                path = path.replace("//", "/")
            query = urlencode(params, quote_via=quote, safe="$'(),:")
            payload["@odata.nextLink"] = f"{req.base_url}{path}?{query}"
        payload["value"] = [render_directory_object(o, q.select) for o in page]
        return self._ok(req, payload, units=2)

    # ------------------------------------------------------------ identity platform

    def openid_configuration(self, req: Request, m: Match, caller: Caller | None) -> Response:
        doc = self.tokens.openid_configuration(m.group("tenant"), req.base_url)
        headers = {**login_headers(req), "Cache-Control": "max-age=86400, private"}
        return Response.json(200, doc, LOGIN_JSON, **headers)

    def instance_discovery(self, req: Request, m: Match, caller: Caller | None) -> Response:
        return Response.json(200, self.tokens.instance_discovery(req.base_url, req.host), LOGIN_JSON,
                             **login_headers(req))

    def jwks(self, req: Request, m: Match, caller: Caller | None) -> Response:
        self.tokens.resolve_tenant(m.group("tenant"))
        return Response.json(200, {"keys": []}, LOGIN_JSON, **login_headers(req))

    def token(self, req: Request, m: Match, caller: Caller | None) -> Response:
        payload = self.tokens.token(m.group("tenant"), req.form(), req.base_url, basic_credentials(req))
        return Response.json(200, payload, LOGIN_JSON, **login_headers(req))

    def managed_identity_token(self, req: Request, m: Match, caller: Caller | None) -> Response:
        try:
            payload = self.tokens.managed_identity(req.query, req.headers.get("x-identity-header"))
        except exc.TokenError as error:  # App Service's own error shape, not OAuth's
            return Response.json(error.status, {"statusCode": error.status, "message": error.description},
                                 "application/json; charset=utf-8")
        return Response.json(200, payload, "application/json; charset=utf-8")

    def device_code(self, req: Request, m: Match, caller: Caller | None) -> Response:
        payload = self.tokens.device_code(m.group("tenant"), req.form(), req.base_url)
        return Response.json(200, payload, LOGIN_JSON, **login_headers(req))

    # ------------------------------------------------------------ Azure Resource Manager

    def arm_subscriptions(self, req: Request, m: Match, caller: Caller | None) -> Response:
        return Response.json(200, {"value": []}, "application/json; charset=utf-8")

    def arm_tenants(self, req: Request, m: Match, caller: Caller | None) -> Response:
        tid, domain = self.directory.tenant_id, self.directory.domain
        tenant = {"id": f"/tenants/{tid}", "tenantId": tid, "countryCode": "US",
                  "displayName": "cypht-azure emulator", "domains": [domain], "tenantCategory": "Home",
                  "defaultDomain": domain, "tenantType": "AAD"}
        return Response.json(200, {"value": [tenant]}, "application/json; charset=utf-8")

    # ------------------------------------------------------------ applications

    def applications_count(self, req: Request, m: Match, caller: Caller) -> Response:
        if req.headers.get("consistencylevel", "").lower() != "eventual":
            raise exc.BadRequest("$count is not currently supported.")
        return Response(200, {"Content-Type": "text/plain", **graph_headers(req, 1)},
                        str(len(self.directory.app_list(caller))).encode())

    def applications(self, req: Request, m: Match, caller: Caller) -> Response:
        if req.method == "GET":
            return self._collection(req, "applications", self.directory.app_list(caller),
                                    schema.APPLICATION_PROPERTIES, "microsoft.graph.application")
        app = self.directory.app_create(caller, req.json())
        return self._entity(req, "applications", app, status=201,
                            location=self._location(req, app["id"], "Microsoft.DirectoryServices.Application"))

    def application(self, req: Request, m: Match, caller: Caller) -> Response:
        key = entity_key(m)
        if req.method == "GET":
            select = parse_select(req.query.get("$select"), schema.APPLICATION_PROPERTIES,
                                  "microsoft.graph.application")
            return self._entity(req, "applications", self.directory.app_get(caller, key), select)
        if req.method == "DELETE":
            self.directory.app_delete(caller, key)
            return self._no_content(req)
        if key[0] == "uniqueName":
            prefer = req.headers.get("prefer", "").lower()
            created = self.directory.app_upsert(caller, key[1], req.json(), "create-if-missing" in prefer)
            if created is not None:
                return self._entity(req, "applications", created, status=201,
                                    location=self._location(req, created["id"],
                                                            "Microsoft.DirectoryServices.Application"))
            return self._no_content(req)
        self.directory.app_update(caller, key, req.json())
        return self._no_content(req)

    # -- credentials -------------------------------------------------------

    def _add_password(self, req: Request, m: Match, caller: Caller, target: Target) -> Response:
        cred = self.directory.add_password_op(caller, target, entity_key(m), req.json())
        payload = {"@odata.context": self._context(req, "microsoft.graph.passwordCredential"), **cred}
        return self._ok(req, payload, location=req.base_url)

    def _remove_password(self, req: Request, m: Match, caller: Caller, target: Target) -> Response:
        self.directory.remove_password_op(caller, target, entity_key(m), req.json())
        return self._no_content(req)

    def add_password_app(self, req: Request, m: Match, caller: Caller) -> Response:
        return self._add_password(req, m, caller, "application")

    def remove_password_app(self, req: Request, m: Match, caller: Caller) -> Response:
        return self._remove_password(req, m, caller, "application")

    def add_password_sp(self, req: Request, m: Match, caller: Caller) -> Response:
        return self._add_password(req, m, caller, "servicePrincipal")

    def remove_password_sp(self, req: Request, m: Match, caller: Caller) -> Response:
        return self._remove_password(req, m, caller, "servicePrincipal")

    # -- owners ------------------------------------------------------------

    def _owners(self, req: Request, m: Match, caller: Caller, target: Target) -> Response:
        owners = self.directory.owners_list(caller, target, entity_key(m))
        return self._ok(req, {"@odata.context": self._context(req, "directoryObjects"), "value": owners})

    def owners_app(self, req: Request, m: Match, caller: Caller) -> Response:
        return self._owners(req, m, caller, "application")

    def owners_sp(self, req: Request, m: Match, caller: Caller) -> Response:
        return self._owners(req, m, caller, "servicePrincipal")

    def owner_add_app(self, req: Request, m: Match, caller: Caller) -> Response:
        self.directory.owner_add(caller, "application", entity_key(m), req.json())
        return self._no_content(req)

    def owner_add_sp(self, req: Request, m: Match, caller: Caller) -> Response:
        self.directory.owner_add(caller, "servicePrincipal", entity_key(m), req.json())
        return self._no_content(req)

    def owner_remove_app(self, req: Request, m: Match, caller: Caller) -> Response:
        self.directory.owner_remove(caller, "application", entity_key(m), m.group("owner"))
        return self._no_content(req)

    def owner_remove_sp(self, req: Request, m: Match, caller: Caller) -> Response:
        self.directory.owner_remove(caller, "servicePrincipal", entity_key(m), m.group("owner"))
        return self._no_content(req)

    # -- federated identity credentials ------------------------------------

    def federated_credentials(self, req: Request, m: Match, caller: Caller) -> Response:
        key = entity_key(m)
        if req.method == "GET":
            app = self.directory.app_get(caller, key)
            return self._collection(req, f"applications('{app['id']}')/federatedIdentityCredentials",
                                    self.directory.fic_list(caller, key), FIC_PROPERTIES,
                                    "microsoft.graph.federatedIdentityCredential")
        fic, app_id = self.directory.fic_create(caller, key, req.json())
        tid = self.directory.tenant_id
        odata_id = (f"{req.base_url}/v2/{tid}/directoryObjects/$/Microsoft.DirectoryServices.Application"
                    f"('{app_id}')/federatedIdentityCredentials/{fic['id']}")
        payload = {
            "@odata.context": self._context(req, f"applications('{app_id}')/federatedIdentityCredentials/$entity"),
            "@odata.id": odata_id,
            **fic,
        }
        return self._ok(req, payload, 201, location=odata_id)

    def federated_credential(self, req: Request, m: Match, caller: Caller) -> Response:
        key = entity_key(m)
        fic_key: Key = ("id", m.group("fic")) if m.group("fic") is not None else (
            "name", _unquote_key(m.group("ficname")))
        if req.method == "GET":
            fic = self.directory.fic_get(caller, key, fic_key)
            app = self.directory.app_get(caller, key)
            return self._ok(req, {"@odata.context": self._context(
                req, f"applications('{app['id']}')/federatedIdentityCredentials/$entity"), **fic})
        if req.method == "PATCH":
            self.directory.fic_update(caller, key, fic_key, req.json())
        else:
            self.directory.fic_delete(caller, key, fic_key)
        return self._no_content(req)

    # ------------------------------------------------------------ service principals

    def service_principals(self, req: Request, m: Match, caller: Caller) -> Response:
        if req.method == "GET":
            return self._collection(req, "servicePrincipals", self.directory.sp_list(caller),
                                    schema.SERVICE_PRINCIPAL_PROPERTIES, "microsoft.graph.servicePrincipal")
        sp = self.directory.sp_create(caller, req.json())
        return self._entity(req, "servicePrincipals", sp, status=201,
                            location=self._location(req, sp["id"], "Microsoft.DirectoryServices.ServicePrincipal"))

    def service_principal(self, req: Request, m: Match, caller: Caller) -> Response:
        key = entity_key(m)
        if req.method == "GET":
            select = parse_select(req.query.get("$select"), schema.SERVICE_PRINCIPAL_PROPERTIES,
                                  "microsoft.graph.servicePrincipal")
            return self._entity(req, "servicePrincipals", self.directory.sp_get(caller, key), select)
        if req.method == "PATCH":
            self.directory.sp_update(caller, key, req.json())
        else:
            self.directory.sp_delete(caller, key)
        return self._no_content(req)

    # ------------------------------------------------------------ oauth2PermissionGrants

    def grants(self, req: Request, m: Match, caller: Caller) -> Response:
        if req.method == "GET":
            return self._collection(req, "oauth2PermissionGrants", self.directory.grant_list(caller),
                                    GRANT_PROPERTIES, "microsoft.graph.oAuth2PermissionGrant")
        grant = self.directory.grant_create(caller, req.json())
        payload = {"@odata.context": self._context(req, "oauth2PermissionGrants/$entity"), **grant}
        location = f"{req.base_url}/v2/{self.directory.tenant_id}/oauth2PermissionGrants/{grant['id']}"
        return self._ok(req, payload, 201, location=location)

    def grant(self, req: Request, m: Match, caller: Caller) -> Response:
        grant_id = m.group("grant")
        if req.method == "GET":
            grant = self.directory.grant_get(caller, grant_id)
            return self._ok(req, {"@odata.context": self._context(req, "oauth2PermissionGrants/$entity"), **grant})
        if req.method == "PATCH":
            self.directory.grant_update(caller, grant_id, req.json())
        else:
            self.directory.grant_delete(caller, grant_id)
        return self._no_content(req)

    # ------------------------------------------------------------ deleted items

    def deleted_items(self, req: Request, m: Match, caller: Caller) -> Response:
        kind: Target = "application" if m.group("type") == "application" else "servicePrincipal"
        set_name = "applications" if kind == "application" else "servicePrincipals"
        known = schema.APPLICATION_PROPERTIES if kind == "application" else schema.SERVICE_PRINCIPAL_PROPERTIES
        return self._collection(req, set_name, self.directory.deleted_list(caller, kind), known,
                                f"microsoft.graph.{kind}")

    def deleted_item(self, req: Request, m: Match, caller: Caller) -> Response:
        if req.method == "DELETE":
            self.directory.deleted_purge(caller, m.group("deleted"))
            return self._no_content(req)
        kind, obj = self.directory.deleted_get(caller, m.group("deleted"))
        payload = {"@odata.context": self._context(req, "directory/deletedItems/$entity"),
                   "@odata.type": f"#microsoft.graph.{kind}", **render_directory_object(obj)}
        return self._ok(req, payload)

    def restore_deleted_item(self, req: Request, m: Match, caller: Caller) -> Response:
        kind, obj = self.directory.deleted_restore(caller, m.group("deleted"))
        payload = {"@odata.context": self._context(req, "directoryObjects/$entity"),
                   "@odata.type": f"#microsoft.graph.{kind}", **render_directory_object(obj)}
        return self._ok(req, payload)

    # ------------------------------------------------------------ users and tenant

    def user(self, req: Request, m: Match, caller: Caller) -> Response:
        select = parse_select(req.query.get("$select"), USER_PROPERTIES, "microsoft.graph.user")
        return self._entity(req, "users", self.directory.user_get(caller, m.group("user")), select)

    def me(self, req: Request, m: Match, caller: Caller) -> Response:
        if caller.kind != "user":
            raise exc.BadRequest("/me request is only valid with delegated authentication flow.", code="BadRequest")
        user = self.directory.user_by_key(caller.object_id)
        if user is None:
            raise exc.ResourceNotFound(caller.object_id)
        return self._entity(req, "users", user)

    def organization(self, req: Request, m: Match, caller: Caller) -> Response:
        domain = self.directory.domain
        org = {"id": self.directory.tenant_id, "displayName": "cypht-azure emulator", "tenantType": "AAD",
               "verifiedDomains": [{"capabilities": "Email, OfficeCommunicationsOnline", "isDefault": True,
                                    "isInitial": True, "name": domain, "type": "Managed"}]}
        return self._ok(req, {"@odata.context": self._context(req, "organization"), "value": [org]})
