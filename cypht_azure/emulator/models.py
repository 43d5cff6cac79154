"""The directory: Entra objects and Graph's rules about them.

One :class:`Directory` per emulator holds the state document (see state.py) and implements every
operation both for the HTTP side (``app_create(caller, body)``...) and for tests
(``create_application(**props)``...). It is built in layers, a room each: the state, its
authorization rules and lookups (directory.py); applications, their credentials, owners, deleted
items and users (applications.py); service principals, grants and federated credentials
(principals.py); and here the seed and the Python API for tests. HTTP framing lives in
responses.py; these modules only speak dicts and raise the errors of exceptions.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import gc
import hmac
import secrets
from collections.abc import Iterable
from typing import Any, Literal

from . import schema
from .applications import secret_hash
from .directory import SYSTEM, WRITE_ALL, Caller
from .principals import Principals
from .schema import new_guid, now
from .state import StateStore

__all__ = ["SYSTEM", "Caller", "Directory"]


class Directory(Principals):
    """State and rules of one emulated tenant: every operation, for the HTTP side and for tests."""

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
