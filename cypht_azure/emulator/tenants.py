"""Who can sign in where: one directory per tenant, and the authority an endpoint speaks for.

The emulated organisation is the :class:`~.models.Directory` (its users are work accounts).
Personal Microsoft accounts live in the consumer tenant (signin.md §1), a directory of its own whose
accounts are made up from the address on first use: any address outside the organisation's domain is
a personal account, with ids derived from the address so that every process agrees on them.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from typing import Literal

from . import exceptions as exc
from .models import Directory

CONSUMER_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DNS = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
_ACCOUNT_NAMESPACE = uuid.UUID("6f1b3c2e-0d5a-4d4e-9a57-2f6a1c0e9b10")

AccountKind = Literal["work", "personal"]


@dataclass(frozen=True)
class Account:
    login: str
    kind: AccountKind
    tenant_id: str
    object_id: str
    display_name: str

    @property
    def live_user_id(self) -> str:
        """login.live.com's ``user_id``: 32 lowercase hex digits."""
        return hashlib.sha256(("live:" + self.object_id).encode()).hexdigest()[:32]


class WorkTenant:
    """The organisation: accounts are the directory's users."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self.display_name = "cypht-azure emulator"

    @property
    def tenant_id(self) -> str:
        return self.directory.tenant_id

    @property
    def domain(self) -> str:
        return self.directory.domain

    def names(self) -> set[str]:
        return {self.tenant_id.lower(), self.domain.lower()}

    def owns(self, login: str) -> bool:
        """The address is in one of the organisation's domains (whether or not the user exists)."""
        return login.rpartition("@")[2].lower() == self.domain.lower() or self.account(login) is not None

    def account(self, login: str) -> Account | None:
        user = self.directory.user_by_key(login)
        if user is None:
            return None
        return Account(user["userPrincipalName"], "work", self.tenant_id, user["id"], user["displayName"])

    def users(self) -> list[str]:
        with self.directory.store.read() as data:
            return sorted(u["userPrincipalName"] for u in data["users"].values())


class ConsumerTenant:
    """Personal Microsoft accounts: every well-formed address outside the organisation."""

    tenant_id = CONSUMER_TENANT_ID
    display_name = "Microsoft Accounts"

    def account(self, login: str) -> Account | None:
        address = login.strip()
        local, at, domain = address.partition("@")
        if not (local and at and _DNS.match(domain)):
            return None
        object_id = str(uuid.uuid5(_ACCOUNT_NAMESPACE, address.lower()))
        return Account(address, "personal", self.tenant_id, object_id, local)


@dataclass(frozen=True)
class Authority:
    """What one sign-in endpoint serves: the v2 tenant segment, or login.live.com."""

    family: Literal["v2", "live"]
    segment: str  # as sent ("live" for login.live.com)
    kind: Literal["common", "organizations", "consumers", "tenant", "live"]
    work: bool  # signs in the organisation's accounts
    personal: bool  # signs in personal Microsoft accounts

    @property
    def is_live(self) -> bool:
        return self.family == "live"


class Tenants:
    """The organisation and the consumer tenant, and which endpoint reaches which."""

    def __init__(self, directory: Directory) -> None:
        self.work = WorkTenant(directory)
        self.consumers = ConsumerTenant()

    def live(self) -> Authority:
        return Authority("live", "live", "live", work=False, personal=True)

    def authority(self, segment: str) -> Authority:
        """The authority of a v2 tenant segment; an ErrorPage for a malformed or unknown tenant."""
        low = segment.lower()
        if low in ("common", "organizations", "consumers"):
            return Authority("v2", segment, low, work=low != "consumers", personal=low != "organizations")  # type: ignore[arg-type]
        if low == CONSUMER_TENANT_ID:
            return Authority("v2", segment, "consumers", work=False, personal=True)
        if low in self.work.names():
            return Authority("v2", segment, "tenant", work=True, personal=False)
        if not (_GUID.match(segment) or _DNS.match(segment)):
            raise exc.malformed_tenant(segment)
        raise exc.unknown_tenant_page(segment)

    def find(self, login: str) -> Account | None:
        """A directory user, else a personal account (None for an unknown address in the organisation's domain)."""
        account = self.work.account(login)
        if account is not None:
            return account
        if self.work.owns(login):
            return None
        return self.consumers.account(login)
