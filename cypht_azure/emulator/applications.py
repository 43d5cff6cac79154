"""Applications, their credentials and owners, deleted items and users: Graph's rules about them."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from . import exceptions as exc
from . import schema, validation
from .directory import READ_ROLES, USER_READ_ROLES, WRITE_ALL, Caller, DirectoryBase, Key, Target
from .schema import new_guid, now


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _fmt_time(t: dt.datetime) -> str:
    return schema.iso7(t) if t.microsecond else schema.iso(t)


def _time_field(value: Any, prop: str, resource: str) -> dt.datetime:
    if not isinstance(value, str):
        raise exc.InvalidValue(prop, resource)
    try:
        return schema.parse_time(value)
    except ValueError as error:
        raise exc.InvalidValue(prop, resource) from error


def _cert_display_name(cert: x509.Certificate) -> str:
    short = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
             "localityName": "L", "stateOrProvinceName": "S", "countryName": "C", "emailAddress": "E"}
    parts = []
    for attr in reversed(list(cert.subject)):
        name = short.get(attr.oid._name, attr.oid.dotted_string)
        parts.append(f"{name}={attr.value!s}")
    return ", ".join(parts)


def _cert_validity(cert: x509.Certificate) -> tuple[dt.datetime, dt.datetime]:
    """Validity window, also with cryptography < 42 (no ``*_utc`` accessors there)."""
    if hasattr(cert, "not_valid_before_utc"):
        return cert.not_valid_before_utc, cert.not_valid_after_utc
    utc = dt.timezone.utc
    return cert.not_valid_before.replace(tzinfo=utc), cert.not_valid_after.replace(tzinfo=utc)


def load_certificate(key_b64: str) -> x509.Certificate:
    raw = base64.b64decode(key_b64, validate=False)
    if raw.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(raw)
    try:
        return x509.load_der_x509_certificate(raw)
    except ValueError:
        return x509.load_pem_x509_certificate(raw)


class Applications(DirectoryBase):
    """Applications, their credentials and owners, deleted items and users: Graph's rules about them."""

    # ------------------------------------------------------------ applications

    def _normalise_app_body(self, body: dict[str, Any], existing: dict[str, Any] | None) -> dict[str, Any]:
        body = validation.drop_odata_annotations(body)
        validation.check_application_body(body)
        if body.get("passwordCredentials"):
            raise exc.InvalidValue("passwordCredentials")
        out: dict[str, Any] = {}
        for key, value in body.items():
            if key in schema.APPLICATION_READ_ONLY:
                continue  # Graph ignores server-owned properties in bodies.
            if key in schema.APPLICATION_COMPLEX:
                if value is not None and not isinstance(value, dict):
                    raise exc.InvalidValue(key)
                value = validation.drop_odata_annotations(value or {})
            if key == "keyCredentials":
                value = self._key_credentials(value, existing)
            elif key == "appRoles":
                value = self._app_roles(value)
            elif key == "optionalClaims":
                value = self._optional_claims(value)
            elif key in ("tags", "identifierUris") and value is None:
                raise exc.InvalidValue(key)
            out[key] = value
        return out

    def _key_credentials(self, items: Any, existing: dict[str, Any] | None) -> list[dict[str, Any]]:
        if not isinstance(items, list):
            raise exc.InvalidValue("keyCredentials")
        old = {k["keyId"]: k for k in (existing or {}).get("keyCredentials", [])}
        out = []
        for raw in items:
            if not isinstance(raw, dict):
                raise exc.InvalidValue("keyCredentials")
            item = validation.drop_odata_annotations(raw)
            key_id = item.get("keyId") or new_guid()
            if not validation.is_guid(key_id):
                raise exc.InvalidValue("keyCredentials")
            if item.get("key") is None and key_id in old:
                out.append(old[key_id])
                continue
            try:
                cert = load_certificate(str(item.get("key") or ""))
            except (ValueError, TypeError) as error:
                raise exc.InvalidValue("keyCredentials") from error
            der = cert.public_bytes(Encoding.DER)
            start = item.get("startDateTime") or schema.iso(_cert_validity(cert)[0])
            end = item.get("endDateTime") or schema.iso(_cert_validity(cert)[1])
            out.append(
                {
                    "customKeyIdentifier": item.get("customKeyIdentifier")
                    or cert.fingerprint(hashes.SHA1()).hex().upper(),  # the thumbprint, as Entra shows it
                    "displayName": item.get("displayName") or _cert_display_name(cert),
                    "endDateTime": end,
                    "key": None,
                    "keyId": key_id.lower(),
                    "startDateTime": start,
                    "type": item.get("type") or "AsymmetricX509Cert",
                    "usage": item.get("usage") or "Verify",
                    "_key": base64.b64encode(der).decode(),
                }
            )
        return out

    @staticmethod
    def _app_roles(items: Any) -> list[dict[str, Any]]:
        if not isinstance(items, list):
            raise exc.InvalidValue("appRoles")
        out = []
        for raw in items:
            role = validation.drop_odata_annotations(raw) if isinstance(raw, dict) else None
            if role is None or not validation.is_guid(role.get("id")):
                raise exc.InvalidValue("appRoles")
            out.append(
                {
                    "allowedMemberTypes": role.get("allowedMemberTypes") or [],
                    "description": role.get("description"),
                    "displayName": role.get("displayName"),
                    "id": role["id"],
                    "isEnabled": role.get("isEnabled", True),
                    "origin": role.get("origin") or "Application",
                    "value": role.get("value"),
                }
            )
        return out

    @staticmethod
    def _optional_claims(value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise exc.InvalidValue("optionalClaims")
        out: dict[str, Any] = {}
        for kind in ("accessToken", "idToken", "saml2Token"):
            claims = value.get(kind) or []
            out[kind] = [
                {"additionalProperties": c.get("additionalProperties") or [], "essential": bool(c.get("essential")),
                 "name": c.get("name"), "source": c.get("source")}
                for c in claims if isinstance(c, dict)
            ]
        return out

    def _apply(self, app: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
        merged = dict(app)
        for key, value in changes.items():
            if key in schema.APPLICATION_COMPLEX and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        return merged

    def _check_identifier_uris_unique(self, app: dict[str, Any]) -> None:
        mine = {u.lower() for u in app.get("identifierUris") or []}
        if not mine:
            return
        for other in self.data["applications"].values():
            if other["id"] != app["id"] and mine & {u.lower() for u in other.get("identifierUris") or []}:
                raise exc.BadRequest("Another object with the same value for property identifierUris already exists.")

    def _check_unique_name(self, app: dict[str, Any]) -> None:
        """A uniqueName is held by one application, live or soft-deleted (docs/emulator.md, "uniqueName"):
        a create or upsert that would take a held name gets 400 Request_BadRequest, as Entra answers."""
        name = app.get("uniqueName")
        if name is None:
            return
        if not isinstance(name, str) or not name:
            raise exc.InvalidValue("uniqueName")
        deleted = (d["object"] for d in self.data["deleted"].values() if d.get("type") == "application")
        for other in (*self.data["applications"].values(), *deleted):
            if other["id"] != app["id"] and str(other.get("uniqueName") or "").lower() == name.lower():
                raise exc.BadRequest("Another object with the same value for property uniqueName already exists.")

    def app_create(self, caller: Caller, body: dict[str, Any], *, unique_name: str | None = None) -> dict[str, Any]:
        with self.store.write():
            self._check_create(caller)
            changes = self._normalise_app_body(body, None)
            if "displayName" not in changes:
                raise exc.BadRequest("Property 'displayName' is required.", code="Request_BadRequest")
            created = now()
            app = schema.application_body(new_guid(), new_guid(), schema.iso(created), self.domain)
            if unique_name is not None:
                changes["uniqueName"] = unique_name
            app = self._apply(app, changes)
            validation.validate_application(app)
            self._check_identifier_uris_unique(app)
            self._check_unique_name(app)
            app["_seq"] = self._next_seq()
            app["_owners"] = [caller.object_id] if caller.kind != "system" and caller.object_id else []
            app["_createdBy"] = caller.object_id
            app["_fics"] = []
            self.data["applications"][app["id"]] = app
            self.store.mark_dirty()
            result = dict(app)
            result["createdDateTime"] = schema.iso7(created)
            return result

    def app_list(self, caller: Caller) -> list[dict[str, Any]]:
        with self.store.read() as data:
            if caller.kind == "app" and not caller.roles & READ_ROLES:
                raise exc.AuthorizationRequestDenied()
            return list(data["applications"].values())

    def app_get(self, caller: Caller, key: Key) -> dict[str, Any]:
        with self.store.read():
            app = self._find_app(key)
            assert app is not None
            self._check_read(caller, app)
            return app

    def app_update(self, caller: Caller, key: Key, body: dict[str, Any]) -> None:
        with self.store.write():
            app = self._find_app(key)
            assert app is not None
            self._check_write(caller, app)
            self._update_app(app, body)

    def _update_app(self, app: dict[str, Any], body: dict[str, Any]) -> None:
        changes = self._normalise_app_body(body, app)
        if "uniqueName" in changes and app.get("uniqueName") not in (None, changes["uniqueName"]):
            raise exc.BadRequest("Property 'uniqueName' is read-only and cannot be changed.")
        merged = self._apply(app, changes)
        validation.validate_application(merged)
        self._check_identifier_uris_unique(merged)
        self._check_unique_name(merged)
        app.clear()
        app.update(merged)
        self._sync_sp(app)
        self.store.mark_dirty()

    def _sync_sp(self, app: dict[str, Any]) -> None:
        """Keep the home-tenant service principal's mirrored fields current."""
        for sp in self.data["servicePrincipals"].values():
            if sp["appId"] == app["appId"]:
                sp["appDisplayName"] = app.get("displayName")
                sp["signInAudience"] = app.get("signInAudience")
                names = [app["appId"], *(app.get("identifierUris") or [])]
                sp["servicePrincipalNames"] = names + [n for n in sp["servicePrincipalNames"] if n not in names and
                                                       n not in sp.get("_appNames", [])]
                sp["_appNames"] = names

    def app_upsert(
        self, caller: Caller, unique_name: str, body: dict[str, Any], create_if_missing: bool
    ) -> dict[str, Any] | None:
        """PATCH /applications(uniqueName=...): the created app, or None when updated."""
        with self.store.write():
            app = self._find_app(("uniqueName", unique_name), include_missing=True)
            if app is None:
                if not create_if_missing:
                    raise exc.ResourceNotFound(unique_name)
                return self.app_create(caller, body, unique_name=unique_name)
            self._check_write(caller, app)
            self._update_app(app, body)
            return None

    def app_delete(self, caller: Caller, key: Key) -> None:
        with self.store.write():
            app = self._find_app(key)
            assert app is not None
            self._check_write(caller, app)
            self._soft_delete("application", app)
            for sp in list(self.data["servicePrincipals"].values()):
                if sp["appId"] == app["appId"]:
                    self._soft_delete("servicePrincipal", sp)

    def _soft_delete(self, kind: Target, obj: dict[str, Any]) -> None:
        coll = self.data["applications" if kind == "application" else "servicePrincipals"]
        del coll[obj["id"]]
        obj["deletedDateTime"] = schema.iso(now())
        self.data["deleted"][obj["id"]] = {"type": kind, "object": obj}
        if kind == "servicePrincipal":
            self._drop_grants(obj["id"])
        self.store.mark_dirty()

    def _drop_grants(self, sp_id: str) -> None:
        grants = self.data["grants"]
        for gid in [g for g, v in grants.items() if sp_id in (v["clientId"], v["resourceId"])]:
            del grants[gid]

    # ------------------------------------------------------------ credentials

    def add_password_op(
        self, caller: Caller, target: Target, key: Key, body: dict[str, Any]
    ) -> dict[str, Any]:
        with self.store.write():
            obj = self._find(target, key)
            self._check_write(caller, obj)
            body = validation.drop_odata_annotations(body or {})
            for prop in body:
                if prop != "passwordCredential":
                    raise exc.UnknownProperty(prop, "microsoft.graph.addPasswordRequestBody")
            spec = body.get("passwordCredential") or {}
            if not isinstance(spec, dict):
                raise exc.InvalidValue("passwordCredential", "PasswordCredential")
            spec = validation.drop_odata_annotations(spec)
            allowed = {"customKeyIdentifier", "displayName", "endDateTime", "hint", "keyId", "secretText",
                       "startDateTime"}
            for prop in spec:
                if prop not in allowed:
                    raise exc.UnknownProperty(prop, "microsoft.graph.passwordCredential")
            return self._add_password(obj, target, spec.get("displayName"), spec.get("startDateTime"),
                                      spec.get("endDateTime"))

    def _add_password(
        self, obj: dict[str, Any], target: Target, display_name: Any, start_raw: Any, end_raw: Any,
        secret_text: str | None = None,
    ) -> dict[str, Any]:
        if display_name is not None and not isinstance(display_name, str):
            raise exc.InvalidValue("displayName", "PasswordCredential")
        created = now()
        start = created if start_raw is None else _time_field(start_raw, "startDateTime", "PasswordCredential")
        start_text = schema.iso7(start) if start_raw is None else _fmt_time(start)
        if end_raw is None:
            try:
                end = start.replace(year=start.year + 2)
            except ValueError:  # 29 February
                end = start + dt.timedelta(days=730)
            end_text = schema.iso7(end)
        else:
            end = _time_field(end_raw, "endDateTime", "PasswordCredential")
            end_text = _fmt_time(end)
        if end <= start:
            raise exc.InvalidValue("endDateTime", "PasswordCredential")
        policy = self.data["policy"]
        if policy.get("max_secret_days") is not None and end - start > dt.timedelta(days=float(policy["max_secret_days"])):
            raise exc.CredentialLifetimePolicy(policy["policy_id"])
        if target == "application" and obj.get("signInAudience") in schema.PERSONAL_AUDIENCES and len(
            obj.get("passwordCredentials") or []
        ) >= 2:
            raise exc.BadRequest(
                "Applications that support personal Microsoft accounts can have at most 2 client secrets."
            )
        secret = secret_text or schema.new_secret_text()
        credential = {
            "customKeyIdentifier": None,
            "displayName": display_name,
            "endDateTime": end_text,
            "hint": secret[:3] if target == "application" else None,
            "keyId": new_guid(),
            "secretText": None,
            "startDateTime": start_text,
            "_secretHash": secret_hash(secret),
        }
        obj.setdefault("passwordCredentials", []).insert(0, credential)  # newest first, as Graph lists them
        self.store.mark_dirty()
        answer = {k: v for k, v in credential.items() if not k.startswith("_")}
        answer["secretText"] = secret
        return answer

    def remove_password_op(self, caller: Caller, target: Target, key: Key, body: dict[str, Any]) -> None:
        with self.store.write():
            obj = self._find(target, key)
            self._check_write(caller, obj)
            body = validation.drop_odata_annotations(body or {})
            for prop in body:
                if prop != "keyId":
                    raise exc.UnknownProperty(prop, "microsoft.graph.removePasswordRequestBody")
            key_id = body.get("keyId")
            if not validation.is_guid(key_id):
                raise exc.InvalidValue("keyId", "PasswordCredential")
            creds = obj.get("passwordCredentials") or []
            keep = [c for c in creds if c["keyId"].lower() != str(key_id).lower()]
            if len(keep) == len(creds):
                if int(self.data["options"].get("remove_password_unknown_key_status", 404)) == 400:
                    raise exc.InvalidValue("keyId", "PasswordCredential")
                raise exc.ResourceNotFound(str(key_id))
            obj["passwordCredentials"] = keep
            self.store.mark_dirty()

    # ------------------------------------------------------------ owners

    def _directory_object(self, object_id: str) -> dict[str, Any] | None:
        user = self.data["users"].get(object_id)
        if user is not None:
            return {"@odata.type": "#microsoft.graph.user", **schema.strip_private(user)}
        sp = self.data["servicePrincipals"].get(object_id)
        if sp is not None:
            return {"@odata.type": "#microsoft.graph.servicePrincipal", **schema.strip_private(sp)}
        return None

    def owners_list(self, caller: Caller, target: Target, key: Key) -> list[dict[str, Any]]:
        with self.store.read():
            obj = self._find(target, key)
            self._check_read(caller, obj)
            return [o for o in (self._directory_object(i) for i in obj.get("_owners", [])) if o is not None]

    def owner_add(self, caller: Caller, target: Target, key: Key, body: dict[str, Any]) -> None:
        with self.store.write():
            obj = self._find(target, key)
            if caller.kind == "app" and WRITE_ALL not in caller.roles:
                raise exc.AuthorizationRequestDenied()
            self._check_write(caller, obj)
            ref = body.get("@odata.id") if isinstance(body, dict) else None
            match = re.search(r"([0-9a-fA-F-]{36})/?$", str(ref or ""))
            if not match:
                raise exc.InvalidValue("@odata.id", "DirectoryObject")
            owner_id = validation.require_guid(match.group(1))
            if self._directory_object(owner_id) is None:
                raise exc.ResourceNotFound(owner_id)
            if owner_id in obj.setdefault("_owners", []):
                raise exc.BadRequest(
                    "One or more added object references already exist for the following modified properties: 'owners'."
                )
            obj["_owners"].append(owner_id)
            self.store.mark_dirty()

    def owner_remove(self, caller: Caller, target: Target, key: Key, owner_id: str) -> None:
        with self.store.write():
            obj = self._find(target, key)
            self._check_write(caller, obj)
            owner_id = validation.require_guid(owner_id)
            if owner_id not in obj.get("_owners", []):
                raise exc.ResourceNotFound(owner_id)
            obj["_owners"].remove(owner_id)
            self.store.mark_dirty()

    # ------------------------------------------------------------ deleted items

    def deleted_list(self, caller: Caller, kind: Target) -> list[dict[str, Any]]:
        with self.store.read() as data:
            self._check_read(caller)
            return [d["object"] for d in data["deleted"].values() if d["type"] == kind]

    def deleted_get(self, caller: Caller, object_id: str) -> tuple[Target, dict[str, Any]]:
        with self.store.read() as data:
            validation.require_guid(object_id)
            entry = data["deleted"].get(object_id.lower())
            if entry is None:
                raise exc.ResourceNotFound(object_id)
            self._check_read(caller, entry["object"])
            return entry["type"], entry["object"]

    def deleted_restore(self, caller: Caller, object_id: str) -> tuple[Target, dict[str, Any]]:
        with self.store.write() as data:
            kind, obj = self.deleted_get(caller, object_id)
            self._check_write(caller, obj)
            self._restore(kind, obj)
            if kind == "application":
                for entry in list(data["deleted"].values()):
                    if entry["type"] == "servicePrincipal" and entry["object"]["appId"] == obj["appId"]:
                        self._restore("servicePrincipal", entry["object"])
            return kind, obj

    def _restore(self, kind: Target, obj: dict[str, Any]) -> None:
        if kind == "application":
            self._check_identifier_uris_unique(obj)
        del self.data["deleted"][obj["id"]]
        obj["deletedDateTime"] = None
        self.data["applications" if kind == "application" else "servicePrincipals"][obj["id"]] = obj
        self.store.mark_dirty()

    def deleted_purge(self, caller: Caller, object_id: str) -> None:
        with self.store.write() as data:
            kind, obj = self.deleted_get(caller, object_id)
            self._check_write(caller, obj)
            del data["deleted"][obj["id"]]
            if kind == "application":
                for oid, entry in list(data["deleted"].items()):
                    if entry["type"] == "servicePrincipal" and entry["object"]["appId"] == obj["appId"]:
                        del data["deleted"][oid]
            self.store.mark_dirty()

    # ------------------------------------------------------------ users

    def user_get(self, caller: Caller, key: str) -> dict[str, Any]:
        with self.store.read():
            if caller.kind == "app" and not caller.roles & USER_READ_ROLES:
                raise exc.AuthorizationRequestDenied()
            user = self.user_by_key(key)
            if user is None:
                raise exc.ResourceNotFound(key)
            return user
