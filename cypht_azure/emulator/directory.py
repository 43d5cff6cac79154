"""The directory's foundation: the state document, its seed, who may do what, and lookups.

The directory of one emulated tenant is built in layers, one room each: this base, the
applications with their credentials, owners, deleted items and users (applications.py), the
service principals, grants and federated credentials (principals.py), and the Python API for
tests and seeding (models.py, whose :class:`~.models.Directory` is the whole). This module only
speaks dicts and raises the errors of exceptions.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

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


class DirectoryBase:
    """State, seed, authorization and lookups of one emulated tenant."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

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

    def _lookup(self, table: str, key: Key) -> dict[str, Any] | None:
        """The object of `table` whose id (a GUID) or other key property equals the value, case-insensitively."""
        kind, value = key
        objects: dict[str, dict[str, Any]] = self.data[table]
        if kind == "id":
            validation.require_guid(value)
            return objects.get(value.lower())
        wanted = value.lower()
        return next((o for o in objects.values() if isinstance(o.get(kind), str) and o[kind].lower() == wanted), None)

    def _find_app(self, key: Key, *, include_missing: bool = False) -> dict[str, Any] | None:
        found = self._lookup("applications", key)
        if found is None and not include_missing:
            raise exc.ResourceNotFound(key[1])
        return found

    def _find_sp(self, key: Key) -> dict[str, Any]:
        found = self._lookup("servicePrincipals", key)
        if found is None:
            raise exc.ResourceNotFound(key[1])
        return found

    def _find(self, target: Target, key: Key) -> dict[str, Any]:
        found = self._find_app(key) if target == "application" else self._find_sp(key)
        assert found is not None
        return found

    def app_by_app_id(self, app_id: str) -> dict[str, Any] | None:
        with self.store.read():
            return self._lookup("applications", ("appId", app_id))

    def sp_by_app_id(self, app_id: str) -> dict[str, Any] | None:
        with self.store.read():
            return self._lookup("servicePrincipals", ("appId", app_id))

    def user_by_key(self, key: str) -> dict[str, Any] | None:
        wanted = key.lower()
        with self.store.read() as data:
            users = data["users"]
            if wanted in users:
                return dict(users[wanted])
            return next((dict(u) for u in users.values() if u["userPrincipalName"].lower() == wanted), None)

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
