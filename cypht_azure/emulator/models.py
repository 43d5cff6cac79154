"""The directory: Entra objects and Graph's rules about them.

One :class:`Directory` per emulator holds the state document (see state.py)
and implements every operation both for the HTTP side (``app_create(caller,
body)``...) and for tests (``create_application(**props)``...). HTTP framing
lives in responses.py; this module only speaks dicts and raises the errors of
exceptions.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import gc
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from . import exceptions as exc
from . import schema, validation
from .schema import new_guid, now
from .state import StateStore

ADMIN_DIRECTORY_ROLES = frozenset(
    {"Global Administrator", "Application Administrator", "Cloud Application Administrator"}
)
READ_ROLES = frozenset(
    {"Application.Read.All", "Application.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)
WRITE_ALL = "Application.ReadWrite.All"
OWNED_BY = "Application.ReadWrite.OwnedBy"
GRANT_ROLES = frozenset({"DelegatedPermissionGrant.ReadWrite.All", "Directory.ReadWrite.All"})
USER_READ_ROLES = frozenset({"User.Read.All", "User.ReadBasic.All", "Directory.Read.All", "Directory.ReadWrite.All"})
FIRST_PARTY_PUBLIC_CLIENTS = {
    "04b07795-8ddb-461a-bbee-02f9e1bf7b46": "Microsoft Azure CLI",
    "1950a258-227b-4e31-a9cf-717495945fc2": "Microsoft Azure PowerShell",
    "14d82eec-204b-4c2f-b7e8-296a70dab67e": "Microsoft Graph Command Line Tools",
}

Target = Literal["application", "servicePrincipal"]
Key = tuple[str, str]  # ("id" | "appId" | "uniqueName", value)


@dataclass(frozen=True)
class Caller:
    """Who is calling Graph, as read from the access token."""

    kind: Literal["app", "user", "system"]
    object_id: str = ""
    app_id: str | None = None
    roles: frozenset[str] = field(default_factory=frozenset)
    scopes: frozenset[str] = field(default_factory=frozenset)


SYSTEM = Caller("system")


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


class Directory:
    """State and rules of one emulated tenant."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    # ------------------------------------------------------------------ seed

    @staticmethod
    def initial_state() -> dict[str, Any]:
        tenant_id = new_guid()
        domain = "cyphtemulator.onmicrosoft.com"
        data: dict[str, Any] = {
            "version": 1,
            "tenant": {"id": tenant_id, "domain": domain, "displayName": "cypht-azure emulator"},
            "signing_key": secrets.token_hex(32),
            "seq": 0,
            "applications": {},
            "servicePrincipals": {},
            "users": {},
            "deleted": {},
            "grants": {},
            "device_codes": {},
            "refresh_tokens": {},
            "policy": {"max_secret_days": None, "policy_id": None},
            "quota": None,
            "options": {"remove_password_unknown_key_status": 404, "device_code_interval": 5},
            "device_flow": {"approver": None, "delay": 0.0, "decline": False},
            "seed": {},
        }
        directory = Directory(StateStore(None, lambda: data))
        directory._seed()
        return data

    def _seed(self) -> None:
        with self.store.write():
            self._seed_resource_sps()
            admin_user = f"admin@{self.domain}"
            self.add_user(admin_user, directory_roles=["Application Administrator"], display_name="Emulator Admin")
            client_id, secret = self.add_app_identity(
                "cypht-azure emulator admin", roles=[WRITE_ALL, "DelegatedPermissionGrant.ReadWrite.All"]
            )
            device = self.create_application(
                displayName="cypht-azure emulator device login", isFallbackPublicClient=True,
                publicClient={"redirectUris": ["http://localhost"]},
            )
            self._create_sp(SYSTEM, device["appId"])
            seed = self.data["seed"]
            seed.update(
                admin_client_id=client_id, admin_client_secret=secret, admin_user=admin_user,
                device_code_client_id=device["appId"],
            )
            self.data["device_flow"]["approver"] = admin_user
            self.store.mark_dirty()

    def _seed_resource_sps(self) -> None:
        graph_names = [
            schema.GRAPH_APP_ID, "https://graph.microsoft.com", "https://graph.microsoft.com/",
            "https://graph.microsoft.us", "https://dod-graph.microsoft.us", "https://canary.graph.microsoft.com",
        ]
        resources = [
            ("Microsoft Graph", schema.GRAPH_APP_ID, graph_names, schema.GRAPH_SCOPES, schema.GRAPH_ROLES),
            ("Office 365 Exchange Online", schema.EXCHANGE_APP_ID,
             [schema.EXCHANGE_APP_ID, "https://outlook.office365.com/", "https://outlook.office.com/"],
             schema.EXCHANGE_SCOPES, schema.EXCHANGE_ROLES),
        ]
        for name, app_id, names, scopes, roles in resources:
            fake_app = {"appId": app_id, "displayName": name, "signInAudience": "AzureADMultipleOrgs"}
            sp = schema.service_principal_body(new_guid(), fake_app, schema.MICROSOFT_TENANT_ID, schema.iso(now()))
            sp["servicePrincipalNames"] = names
            sp["oauth2PermissionScopes"] = [schema.permission_scope(v, i, v) for v, i in scopes.items()]
            sp["appRoles"] = [schema.app_role(v, i) for v, i in roles.items()]
            sp["_seq"] = self._next_seq()
            sp["_owners"] = []
            self.data["servicePrincipals"][sp["id"]] = sp

    # ------------------------------------------------------------ properties

    @property
    def data(self) -> dict[str, Any]:
        return self.store.data

    @property
    def tenant_id(self) -> str:
        with self.store.read() as data:
            return str(data["tenant"]["id"])

    @property
    def domain(self) -> str:
        with self.store.read() as data:
            return str(data["tenant"]["domain"])

    @property
    def seed(self) -> dict[str, str]:
        with self.store.read() as data:
            return dict(data["seed"])

    @property
    def signing_key(self) -> bytes:
        with self.store.read() as data:
            return bytes.fromhex(data["signing_key"])

    def option(self, name: str) -> Any:
        with self.store.read() as data:
            return data["options"].get(name)

    def set_option(self, name: str, value: Any) -> None:
        with self.store.write() as data:
            data["options"][name] = value
            self.store.mark_dirty()

    def _next_seq(self) -> int:
        self.data["seq"] = int(self.data["seq"]) + 1
        return int(self.data["seq"])

    # ------------------------------------------------------------ authorization

    def _user_roles(self, caller: Caller) -> frozenset[str]:
        user = self.data["users"].get(caller.object_id)
        return frozenset(user.get("_roles", [])) if user else frozenset()

    def _is_admin(self, caller: Caller) -> bool:
        if caller.kind == "system":
            return True
        if caller.kind == "app":
            return WRITE_ALL in caller.roles
        return bool(self._user_roles(caller) & ADMIN_DIRECTORY_ROLES)

    def _check_read(self, caller: Caller, obj: dict[str, Any] | None = None) -> None:
        if caller.kind != "app" or caller.roles & READ_ROLES:
            return
        if OWNED_BY in caller.roles and obj is not None and caller.object_id in obj.get("_owners", []):
            return
        raise exc.AuthorizationRequestDenied()

    def _check_write(self, caller: Caller, obj: dict[str, Any]) -> None:
        if self._is_admin(caller):
            return
        if caller.kind == "app" and OWNED_BY not in caller.roles:
            raise exc.AuthorizationRequestDenied()
        if caller.object_id in obj.get("_owners", []):
            return
        raise exc.AuthorizationRequestDenied()

    def _check_create(self, caller: Caller) -> None:
        if caller.kind == "app" and not caller.roles & {WRITE_ALL, OWNED_BY}:
            raise exc.AuthorizationRequestDenied()
        quota = self.data.get("quota")
        if quota is not None and caller.kind != "system":
            used = sum(
                1
                for coll in (self.data["applications"], self.data["servicePrincipals"])
                for o in coll.values()
                if o.get("_createdBy") == caller.object_id
            ) + sum(1 for d in self.data["deleted"].values() if d["object"].get("_createdBy") == caller.object_id)
            if used >= int(quota):
                raise exc.QuotaExceeded()

    # ------------------------------------------------------------ lookups

    def _find_app(self, key: Key, *, include_missing: bool = False) -> dict[str, Any] | None:
        kind, value = key
        apps: dict[str, dict[str, Any]] = self.data["applications"]
        if kind == "id":
            validation.require_guid(value)
            found = apps.get(value.lower())
        else:
            wanted = value.lower()
            found = next(
                (a for a in apps.values() if isinstance(a.get(kind), str) and a[kind].lower() == wanted), None
            )
        if found is None and not include_missing:
            raise exc.ResourceNotFound(value)
        return found

    def _find_sp(self, key: Key) -> dict[str, Any]:
        kind, value = key
        sps: dict[str, dict[str, Any]] = self.data["servicePrincipals"]
        if kind == "id":
            validation.require_guid(value)
            found = sps.get(value.lower())
        else:
            wanted = value.lower()
            found = next((s for s in sps.values() if str(s.get(kind, "")).lower() == wanted), None)
        if found is None:
            raise exc.ResourceNotFound(value)
        return found

    def _find(self, target: Target, key: Key) -> dict[str, Any]:
        found = self._find_app(key) if target == "application" else self._find_sp(key)
        assert found is not None
        return found

    def app_by_app_id(self, app_id: str) -> dict[str, Any] | None:
        wanted = app_id.lower()
        with self.store.read() as data:
            return next((a for a in data["applications"].values() if a["appId"].lower() == wanted), None)

    def sp_by_app_id(self, app_id: str) -> dict[str, Any] | None:
        wanted = app_id.lower()
        with self.store.read() as data:
            return next((s for s in data["servicePrincipals"].values() if s["appId"].lower() == wanted), None)

    def user_by_key(self, key: str) -> dict[str, Any] | None:
        wanted = key.lower()
        with self.store.read() as data:
            users = data["users"]
            if wanted in users:
                return dict(users[wanted])
            return next((dict(u) for u in users.values() if u["userPrincipalName"].lower() == wanted), None)

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
        name = app.get("uniqueName")
        if name is None:
            return
        if not isinstance(name, str) or not name:
            raise exc.InvalidValue("uniqueName")
        for other in self.data["applications"].values():
            if other["id"] != app["id"] and str(other.get("uniqueName") or "").lower() == name.lower():
                raise exc.DuplicateKeyValue(
                    "Another object with the same value for property uniqueName already exists."
                )

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

    def _create_sp(self, caller: Caller, app_id: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        if self.sp_by_app_id(app_id) is not None:
            raise exc.DuplicateKeyValue(
                "The service principal cannot be created, updated, or restored because the service principal "
                f"name {app_id} is already in use."
            )
        app = self.app_by_app_id(app_id)
        if app is None:
            raise exc.NoBackingApplication(app_id)
        sp = schema.service_principal_body(new_guid(), app, self.tenant_id, schema.iso(now()))
        for key, value in (body or {}).items():
            if key not in ("appId",) and key not in schema.SERVICE_PRINCIPAL_READ_ONLY:
                sp[key] = value
        sp["_seq"] = self._next_seq()
        sp["_appNames"] = list(sp["servicePrincipalNames"])
        # Recorded: a user creating an SP is not made its owner; an OwnedBy app must own it to manage it.
        sp["_owners"] = [caller.object_id] if caller.kind == "app" and OWNED_BY in caller.roles else []
        sp["_createdBy"] = caller.object_id
        sp["_roles"] = []
        self.data["servicePrincipals"][sp["id"]] = sp
        self.store.mark_dirty()
        return sp

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

    # ================================================================ Python API for tests and seeding

    def add_user(
        self, upn: str, directory_roles: Iterable[str] = (), display_name: str | None = None,
        object_id: str | None = None,
    ) -> str:
        with self.store.write() as data:
            if self.user_by_key(upn) is not None:
                raise ValueError(f"user {upn} already exists")
            user_id = (object_id or new_guid()).lower()
            user = schema.user_body(user_id, upn, display_name or upn.split("@")[0])
            user["_roles"] = list(directory_roles)
            user["_seq"] = self._next_seq()
            data["users"][user_id] = user
            self.store.mark_dirty()
            return user_id

    def set_user_roles(self, upn: str, directory_roles: Iterable[str]) -> None:
        with self.store.write() as data:
            user = self.user_by_key(upn)
            if user is None:
                raise KeyError(upn)
            data["users"][user["id"]]["_roles"] = list(directory_roles)
            self.store.mark_dirty()

    def set_device_code_approver(
        self, upn: str | None = None, *, delay_seconds: float | None = None, decline: bool | None = None,
        interval: int | None = None,
    ) -> None:
        """Who approves device-code sign-ins, after how long, or whether they decline."""
        with self.store.write() as data:
            flow = data["device_flow"]
            if upn is not None:
                if self.user_by_key(upn) is None:
                    raise KeyError(upn)
                flow["approver"] = upn
            if delay_seconds is not None:
                flow["delay"] = float(delay_seconds)
            if decline is not None:
                flow["decline"] = bool(decline)
            if interval is not None:
                data["options"]["device_code_interval"] = int(interval)
            self.store.mark_dirty()

    def add_app_identity(
        self, display_name: str, roles: Iterable[str] = (WRITE_ALL,), *, certificate_pem: bytes | None = None,
    ) -> tuple[str, str]:
        """An app registration + service principal + secret with admin-consented Graph app roles."""
        with self.store.write():
            body: dict[str, Any] = {"displayName": display_name}
            if certificate_pem is not None:
                body["keyCredentials"] = [
                    {"type": "AsymmetricX509Cert", "usage": "Verify",
                     "key": base64.b64encode(certificate_pem).decode()}
                ]
            app = self.app_create(SYSTEM, body)
            stored = self.data["applications"][app["id"]]
            sp = self._create_sp(SYSTEM, app["appId"])
            sp["_roles"] = list(roles)
            secret = self._add_password(stored, "application", "emulator seed", None, None)["secretText"]
            self.store.mark_dirty()
            return app["appId"], str(secret)

    def grant_app_roles(self, client_id: str, roles: Iterable[str]) -> None:
        with self.store.write():
            sp = self.sp_by_app_id(client_id)
            if sp is None:
                raise KeyError(client_id)
            sp["_roles"] = sorted(set(sp.get("_roles", [])) | set(roles))
            self.store.mark_dirty()

    def create_application(self, owner: str | None = None, **props: Any) -> dict[str, Any]:
        """Seed an application as if someone else created it (``owner``: a user or SP object id)."""
        with self.store.write():
            app = self.app_create(SYSTEM, props)
            if owner:
                self.data["applications"][app["id"]]["_owners"] = [owner.lower()]
                self.store.mark_dirty()
            return schema.strip_private(self.data["applications"][app["id"]])

    def create_service_principal(self, app_id: str) -> dict[str, Any]:
        with self.store.write():
            return schema.strip_private(self._create_sp(SYSTEM, app_id))

    def add_password(
        self, app_object_id: str, display_name: str | None = None, end: dt.datetime | None = None,
        start: dt.datetime | None = None,
    ) -> tuple[str, str]:
        """Add a client secret directly (e.g. an already-expired one); returns (keyId, secretText)."""
        with self.store.write():
            app = self._find_app(("id", app_object_id))
            assert app is not None
            # Direct seeding bypasses the tenant's lifetime policy, like an old secret made before it.
            policy = dict(self.data["policy"])
            self.data["policy"]["max_secret_days"] = None
            try:
                cred = self._add_password(
                    app, "application", display_name,
                    None if start is None else schema.iso(start), None if end is None else schema.iso(end),
                )
            finally:
                self.data["policy"].update(policy)
            return str(cred["keyId"]), str(cred["secretText"])

    def get_application(self, object_id: str | None = None, app_id: str | None = None) -> dict[str, Any] | None:
        with self.store.read() as data:
            if object_id is not None:
                app = data["applications"].get(object_id.lower())
            elif app_id is not None:
                app = self.app_by_app_id(app_id)
            else:
                raise TypeError("object_id or app_id is required")
            return None if app is None else schema.strip_private(app)

    def get_service_principal(self, app_id: str) -> dict[str, Any] | None:
        sp = self.sp_by_app_id(app_id)
        return None if sp is None else schema.strip_private(sp)

    def owners_of(self, app_object_id: str) -> list[str]:
        with self.store.read() as data:
            return list(data["applications"][app_object_id.lower()].get("_owners", []))

    def applications(self) -> list[dict[str, Any]]:
        with self.store.read() as data:
            return [schema.strip_private(a) for a in data["applications"].values()]

    def service_principals(self) -> list[dict[str, Any]]:
        with self.store.read() as data:
            return [schema.strip_private(s) for s in data["servicePrincipals"].values()]

    def deleted_items(self) -> list[dict[str, Any]]:
        with self.store.read() as data:
            return [schema.strip_private(d["object"]) for d in data["deleted"].values()]

    def grants(self) -> list[dict[str, Any]]:
        with self.store.read() as data:
            return [dict(g) for g in data["grants"].values()]

    def federated_credentials(self, app_object_id: str) -> list[dict[str, Any]]:
        with self.store.read() as data:
            return [dict(f) for f in data["applications"][app_object_id.lower()].get("_fics", [])]

    def set_secret_lifetime_policy(self, max_days: float | None, policy_id: str | None = None) -> None:
        with self.store.write() as data:
            data["policy"] = {
                "max_secret_days": max_days,
                "policy_id": policy_id or data["policy"].get("policy_id") or new_guid(),
            }
            self.store.mark_dirty()

    def set_quota(self, limit: int | None) -> None:
        with self.store.write() as data:
            data["quota"] = limit
            self.store.mark_dirty()

    def bulk_seed_applications(
        self, n: int, tag: str | None = "cypht-azure", *, display_name_prefix: str = "cypht-azure-seed-",
        with_password: bool = True, password_end: dt.datetime | None = None, owner: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> list[dict[str, str]]:
        """Create ``n`` applications in one transaction, fast; returns their id, appId and displayName."""
        created_at = now()
        created = schema.iso(created_at)
        end_text = schema.iso(password_end or created_at.replace(year=created_at.year + 2))
        out: list[dict[str, Any]] = []
        gc_was_enabled = gc.isenabled()
        gc.disable()  # thousands of fresh dicts would trigger full collections over the whole state
        try:
            self._bulk_seed(n, tag, display_name_prefix, with_password, owner, extra, created, end_text, out)
        finally:
            if gc_was_enabled:
                gc.enable()
        return [{"id": a["id"], "appId": a["appId"], "displayName": a["displayName"]} for a in out]

    def _bulk_seed(
        self, n: int, tag: str | None, display_name_prefix: str, with_password: bool, owner: str | None,
        extra: dict[str, Any] | None, created: str, end_text: str, out: list[dict[str, Any]],
    ) -> None:
        with self.store.write() as data:
            apps = data["applications"]
            domain = data["tenant"]["domain"]
            for i in range(n):
                app = schema.application_body(new_guid(), new_guid(), created, domain)
                app["displayName"] = f"{display_name_prefix}{i:05d}"
                if tag:
                    app["tags"] = [tag]
                if extra:
                    app.update(extra)
                if with_password:
                    secret = schema.new_secret_text()
                    app["passwordCredentials"] = [{
                        "customKeyIdentifier": None, "displayName": "seed", "endDateTime": end_text,
                        "hint": secret[:3], "keyId": new_guid(), "secretText": None,
                        "startDateTime": created, "_secretHash": secret_hash(secret),
                    }]
                app["_seq"] = self._next_seq()
                app["_owners"] = [owner.lower()] if owner else []
                app["_createdBy"] = ""
                app["_fics"] = []
                apps[app["id"]] = app
                out.append(app)
            self.store.mark_dirty()

    # ------------------------------------------------------------ token-side helpers

    def check_client_secret(self, app_id: str, secret: str) -> Literal["ok", "invalid", "expired"]:
        """Compare against the app's (and its SP's) password credentials, never storing plain text."""
        digest = secret_hash(secret)
        moment = now()
        objects = [o for o in (self.app_by_app_id(app_id), self.sp_by_app_id(app_id)) if o is not None]
        matched = [
            c for o in objects for c in o.get("passwordCredentials") or []
            if hmac.compare_digest(c.get("_secretHash", ""), digest)
        ]
        if not matched:
            return "invalid"
        for cred in matched:
            start = schema.parse_time(cred["startDateTime"])
            end = schema.parse_time(cred["endDateTime"])
            if start <= moment + dt.timedelta(minutes=5) and moment < end:
                return "ok"
        return "expired"

    def caller_for_app(self, app_id: str) -> Caller:
        sp = self.sp_by_app_id(app_id)
        return Caller("app", sp["id"] if sp else "", app_id, frozenset(sp.get("_roles", []) if sp else ()))


