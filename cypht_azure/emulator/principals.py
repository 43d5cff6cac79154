"""Service principals, delegated permission grants and federated identity credentials."""

from __future__ import annotations

from typing import Any

from . import exceptions as exc
from . import schema, validation
from .applications import Applications
from .directory import ADMIN_DIRECTORY_ROLES, GRANT_ROLES, READ_ROLES, Caller, Key
from .schema import new_guid


class Principals(Applications):
    """Service principals, delegated permission grants and federated identity credentials."""

    # ------------------------------------------------------------ service principals

    def sp_list(self, caller: Caller) -> list[dict[str, Any]]:
        with self.store.read() as data:
            if caller.kind == "app" and not caller.roles & READ_ROLES:
                raise exc.AuthorizationRequestDenied()
            return list(data["servicePrincipals"].values())

    def sp_get(self, caller: Caller, key: Key) -> dict[str, Any]:
        with self.store.read():
            sp = self._find_sp(key)
            self._check_read(caller, sp)
            return sp

    def sp_create(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        with self.store.write():
            self._check_create(caller)
            body = validation.drop_odata_annotations(body or {})
            validation.check_service_principal_body(body)
            app_id = body.get("appId")
            if not isinstance(app_id, str) or not app_id:
                raise exc.BadRequest("Property 'appId' is required.")
            return self._create_sp(caller, app_id, body)

    def sp_update(self, caller: Caller, key: Key, body: dict[str, Any]) -> None:
        with self.store.write():
            sp = self._find_sp(key)
            self._check_write(caller, sp)
            body = validation.drop_odata_annotations(body or {})
            validation.check_service_principal_body(body)
            for k, v in body.items():
                if k == "appId" and v != sp["appId"]:
                    raise exc.InvalidValue("appId", "ServicePrincipal")
                if k not in schema.SERVICE_PRINCIPAL_READ_ONLY:
                    sp[k] = v
            self.store.mark_dirty()

    def sp_delete(self, caller: Caller, key: Key) -> None:
        with self.store.write():
            sp = self._find_sp(key)
            self._check_write(caller, sp)
            self._soft_delete("servicePrincipal", sp)

    # ------------------------------------------------------------ oauth2PermissionGrants

    def _check_grant_rights(self, caller: Caller) -> None:
        if caller.kind == "system":
            return
        if caller.kind == "app" and caller.roles & GRANT_ROLES:
            return
        if caller.kind == "user" and self._user_roles(caller) & ADMIN_DIRECTORY_ROLES:
            return
        raise exc.AuthorizationRequestDenied()

    def grant_list(self, caller: Caller) -> list[dict[str, Any]]:
        with self.store.read() as data:
            if caller.kind == "app" and not caller.roles & (GRANT_ROLES | READ_ROLES):
                raise exc.AuthorizationRequestDenied()
            return list(data["grants"].values())

    def grant_get(self, caller: Caller, grant_id: str) -> dict[str, Any]:
        with self.store.read() as data:
            grant = data["grants"].get(grant_id)
            if grant is None:
                raise exc.ResourceNotFound(grant_id)
            return dict(grant)

    def grant_create(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        resource = "OAuth2PermissionGrant"
        with self.store.write():
            self._check_grant_rights(caller)
            body = validation.drop_odata_annotations(body or {})
            allowed = {"clientId", "consentType", "principalId", "resourceId", "scope", "startTime", "expiryTime", "id"}
            for prop in body:
                if prop not in allowed:
                    raise exc.UnknownProperty(prop, "microsoft.graph.oAuth2PermissionGrant")
            client_id, resource_id = body.get("clientId"), body.get("resourceId")
            for prop, value in (("clientId", client_id), ("resourceId", resource_id)):
                if not validation.is_guid(value) or str(value).lower() not in self.data["servicePrincipals"]:
                    raise exc.InvalidValue(prop, resource)
            consent = body.get("consentType")
            principal = body.get("principalId")
            if consent not in ("AllPrincipals", "Principal"):
                raise exc.InvalidValue("consentType", resource)
            if consent == "Principal":
                if not validation.is_guid(principal) or str(principal).lower() not in self.data["users"]:
                    raise exc.InvalidValue("principalId", resource)
            elif principal is not None:
                raise exc.InvalidValue("principalId", resource)
            scope = body.get("scope") or ""
            if not isinstance(scope, str) or len(scope) > 3850:
                raise exc.InvalidValue("scope", resource)
            self._check_scope_values(str(resource_id).lower(), scope)
            gid = schema.grant_id(str(client_id), str(resource_id), str(principal) if principal else None)
            if gid in self.data["grants"]:
                raise exc.DuplicateKeyValue("Permission entry already exists.")
            grant = {
                "clientId": str(client_id).lower(),
                "consentType": consent,
                "id": gid,
                "principalId": str(principal).lower() if principal else None,
                "resourceId": str(resource_id).lower(),
                "scope": scope,
            }
            self.data["grants"][gid] = grant
            self.store.mark_dirty()
            return dict(grant)

    def _check_scope_values(self, resource_sp_id: str, scope: str) -> None:
        sp = self.data["servicePrincipals"][resource_sp_id]
        offered = {s["value"] for s in sp.get("oauth2PermissionScopes") or []}
        for value in scope.split():
            if value not in offered:
                raise exc.InvalidValue("scope", "OAuth2PermissionGrant")

    def grant_update(self, caller: Caller, grant_id: str, body: dict[str, Any]) -> None:
        with self.store.write():
            self._check_grant_rights(caller)
            grant = self.data["grants"].get(grant_id)
            if grant is None:
                raise exc.ResourceNotFound(grant_id)
            body = validation.drop_odata_annotations(body or {})
            for prop, value in body.items():
                if prop == "scope":
                    if not isinstance(value, str):
                        raise exc.InvalidValue("scope", "OAuth2PermissionGrant")
                    self._check_scope_values(grant["resourceId"], value)
                    grant["scope"] = value
                elif prop in ("startTime", "expiryTime"):
                    continue
                elif prop in ("clientId", "consentType", "principalId", "resourceId", "id"):
                    if value != grant.get(prop):
                        raise exc.InvalidValue(prop, "OAuth2PermissionGrant")
                else:
                    raise exc.UnknownProperty(prop, "microsoft.graph.oAuth2PermissionGrant")
            self.store.mark_dirty()

    def grant_delete(self, caller: Caller, grant_id: str) -> None:
        with self.store.write():
            self._check_grant_rights(caller)
            if self.data["grants"].pop(grant_id, None) is None:
                raise exc.ResourceNotFound(grant_id)
            self.store.mark_dirty()

    # ------------------------------------------------------------ federated identity credentials

    def fic_list(self, caller: Caller, key: Key) -> list[dict[str, Any]]:
        with self.store.read():
            app = self._find("application", key)
            self._check_read(caller, app)
            return [dict(f) for f in app.get("_fics", [])]

    def _find_fic(self, app: dict[str, Any], fic_key: Key) -> dict[str, Any]:
        kind, value = fic_key
        if kind == "id":
            validation.require_guid(value)
        fics: list[dict[str, Any]] = app.get("_fics", [])
        for fic in fics:
            if str(fic[kind]).lower() == value.lower():
                return fic
        raise exc.ResourceNotFound(value)

    def fic_get(self, caller: Caller, key: Key, fic_key: Key) -> dict[str, Any]:
        with self.store.read():
            app = self._find("application", key)
            self._check_read(caller, app)
            return dict(self._find_fic(app, fic_key))

    def fic_create(self, caller: Caller, key: Key, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
        with self.store.write():
            app = self._find("application", key)
            self._check_write(caller, app)
            body = validation.drop_odata_annotations(body or {})
            allowed = {"name", "issuer", "subject", "audiences", "description", "id"}
            for prop in body:
                if prop not in allowed:
                    raise exc.UnknownProperty(prop, "microsoft.graph.federatedIdentityCredential")
            fic = {
                "audiences": body.get("audiences"),
                "description": body.get("description"),
                "id": new_guid(),
                "issuer": body.get("issuer"),
                "name": body.get("name"),
                "subject": body.get("subject"),
            }
            validation.validate_federated_credential(fic)
            fics = app.setdefault("_fics", [])
            if len(fics) >= 20:
                raise exc.BadRequest("The maximum number of federated identity credentials (20) has been reached.")
            for other in fics:
                if other["name"].lower() == str(fic["name"]).lower():
                    raise exc.DuplicateKeyValue(f"FederatedIdentityCredential with name {fic['name']} already exists.")
                if other["issuer"] == fic["issuer"] and other["subject"] == fic["subject"]:
                    raise exc.DuplicateKeyValue(
                        "FederatedIdentityCredential with the same issuer and subject already exists."
                    )
            fics.append(fic)
            self.store.mark_dirty()
            return dict(fic), app["id"]

    def fic_update(self, caller: Caller, key: Key, fic_key: Key, body: dict[str, Any]) -> None:
        with self.store.write():
            app = self._find("application", key)
            self._check_write(caller, app)
            fic = self._find_fic(app, fic_key)
            body = validation.drop_odata_annotations(body or {})
            merged = dict(fic)
            for prop, value in body.items():
                if prop not in {"name", "issuer", "subject", "audiences", "description", "id"}:
                    raise exc.UnknownProperty(prop, "microsoft.graph.federatedIdentityCredential")
                if prop in ("name", "id") and value != fic[prop]:
                    raise exc.BadRequest(f"Property '{prop}' is read-only and cannot be changed.")
                merged[prop] = value
            validation.validate_federated_credential(merged)
            fic.update(merged)
            self.store.mark_dirty()

    def fic_delete(self, caller: Caller, key: Key, fic_key: Key) -> None:
        with self.store.write():
            app = self._find("application", key)
            self._check_write(caller, app)
            fic = self._find_fic(app, fic_key)
            app["_fics"].remove(fic)
            self.store.mark_dirty()
