"""Which client secrets are the tool's (and for which `.env`), and freeing a slot under Entra's 2-secret limit.

A `.env` carries an installation ID (`CYPHT_AZURE_INSTALLATION_ID`, a key Cypht ignores), recorded the
first time the tool writes it, so it survives a host rename, a container and `mv` of Cypht's folder.
A secret's display name records who made it and from what: `cypht-azure 2026-11-28 id:3fa9c2d1e0b4a7c6
after:9e9e9e9e at:5d0c7e21`, the installation ID, the first 8 characters of the secret ID that `.env`
held when this one was made (`-` for none) and where the file was (a hash of the machine, the host name
and the file's resolved path). Older names end in `mail1:3fa9c2d1` (host name and a hash of the file's
path) and are still recognised by that; names without `at:` are not placed.

What a `.env` may remove (`Owners.removable`): the secrets it holds when it rotates them, and those of
its installation that it does not hold but that an interrupted run of its own left: made while it held a
secret still on the app, or the predecessor of a secret it holds. Another secret of its installation was
made by another file with the same ID: if it was made at this very place (same machine, same path), the
file that held it is gone — this `.env` replaced it (a redeploy, a file restored from a template or a
backup) — and it is removed once the new secret works (`Owners.replaced`); made elsewhere, it is a copy
of this `.env` in use: that is reported (`Owners.copies`), never fought over. Two Cypht servers sharing
one registration, each with its own `.env`, never remove each other's live secret.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cypht_azure import cypht
from cypht_azure.errors import OperationFailed
from cypht_azure.operations.core import envstate
from cypht_azure.operations.core.session import parse_time

# Entra allows at most 2 client secrets on apps that accept personal Microsoft accounts.
PERSONAL_SECRET_LIMIT = 2
# Why a plan removes a secret that neither provision nor rotate-secret is replacing (the plans' own words).
MAKES_ROOM = "unused by this .env; makes room under Entra's 2-secret limit"
LEFT_BY_INTERRUPTED_RUN = "made for this .env by an interrupted run; held by nothing"
LEFT_BY_REPLACED_FILE = "made at this path for the .env this one replaced; held by no file"


def env_tag(env_path: Path) -> str:
    real = envstate.real_path(env_path)  # resolved once: a link re-pointed meanwhile changes nothing
    host = socket.gethostname().split(".")[0][:24] or "host"
    digest = hashlib.sha256(f"{socket.gethostname()}:{real}".encode()).hexdigest()[:8]
    return f"{host}:{digest}"


INSTALLATION_KEY = "CYPHT_AZURE_INSTALLATION_ID"
_INSTALLATION = re.compile(r"[0-9a-f]{16}")
_MARK = re.compile(r" id:([0-9a-f]{16}) after:([0-9a-f]{8}|-)(?: at:([0-9a-f]{8}))?$")
MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")


def _machine() -> str:
    for name in MACHINE_ID_FILES:
        try:
            return Path(name).read_text().strip()
        except OSError:
            continue
    return ""


def location_tag(env_path: Path) -> str:
    """Where a `.env` is: the machine, the host name and the resolved path, hashed (8 hex digits). Only
    one live file can be at one place: a secret made here that the file here does not hold is held by
    no file any more."""
    real = envstate.real_path(env_path)
    return hashlib.sha256(f"location:{_machine()}:{socket.gethostname()}:{real}".encode()).hexdigest()[:8]


def derived_installation_id(env_path: Path) -> str:
    """The ID a `.env` gets when it has none yet: from the host and the file's path at that moment, so
    that a run killed before writing it finds the same ID again; once recorded it is only read."""
    real = envstate.real_path(env_path)
    return hashlib.sha256(f"installation:{socket.gethostname()}:{real}".encode()).hexdigest()[:16]


def recorded_installation_id(value: str | None) -> str | None:
    text = (value or "").strip().lower()
    return text if _INSTALLATION.fullmatch(text) else None


def new_secret_name(now: dt.datetime, env_path: Path, *, installation: str | None = None,
                    after: str | None = None) -> str:
    iid = installation or derived_installation_id(env_path)
    return f"{cypht.SECRET_NAME_PREFIX} {now:%Y-%m-%d} id:{iid} after:{(after or '-')[:8]} at:{location_tag(env_path)}"


def mark_of(credential: dict[str, Any]) -> tuple[str, str] | None:
    """(installation ID, the held secret's ID prefix when it was made) from a secret's name."""
    found = _MARK.search(str(credential.get("displayName") or ""))
    return (found.group(1), found.group(2)) if found and is_tool_secret(credential) else None


def made_at(credential: dict[str, Any]) -> str | None:
    """The location tag in a secret's name (`at:`), None for names made before it was recorded."""
    found = _MARK.search(str(credential.get("displayName") or ""))
    return found.group(3) if found and is_tool_secret(credential) else None


@dataclass(frozen=True)
class Owners:
    """Whose each of an app's secrets is, seen from one `.env`."""

    installation: str
    env_path: Path
    held: frozenset[str]  # secret IDs this .env holds for the app
    location: str = ""    # location_tag() of this .env

    def mine(self, credential: dict[str, Any]) -> bool:
        mark = mark_of(credential)
        if mark is not None:
            return mark[0] == self.installation
        return made_for(credential, self.env_path)  # an older name: host and path

    def removable(self, credentials: list[dict[str, Any]], *, keep: set[str]) -> list[dict[str, Any]]:
        """Secrets of this `.env` that it does not hold and that its own interrupted runs left, oldest first."""
        on_app = {key_id_of(c) for c in credentials}
        held_on_app = [k for k in self.held if k in on_app]
        successors = {m[1] for c in credentials if key_id_of(c) in self.held and (m := mark_of(c))}
        found = []
        for c in oldest_first(credentials):
            key = key_id_of(c)
            if key in keep or key in self.held or not self.mine(c):
                continue
            mark = mark_of(c)
            if (mark is None or mark[1] == "-" or key[:8] in successors
                    or any(k.startswith(mark[1]) for k in held_on_app)):
                found.append(c)
        return found

    def others(self, credentials: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Secrets of this installation that another file with the same ID made: the file this one
        replaced, or a copy of it."""
        mine = self.removable(credentials, keep=set())
        return [c for c in credentials if self.mine(c) and key_id_of(c) not in self.held and c not in mine]

    def replaced(self, credentials: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Secrets of this installation made at this very place by a file that is gone (a redeploy, a
        restore from a template or a backup): the file here is this one and does not hold them. Oldest first."""
        return [c for c in oldest_first(self.others(credentials))
                if self.location and made_at(c) == self.location]

    def copies(self, credentials: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Secrets of this installation that a copy of this `.env` at another place made: left alone."""
        replaced = self.replaced(credentials)
        return [c for c in self.others(credentials) if c not in replaced]

    def label(self, credential: dict[str, Any], credentials: list[dict[str, Any]]) -> str:
        if not self.mine(credential):
            return "cypht-azure (another .env)" if is_tool_secret(credential) else "someone else"
        if credential in self.replaced(credentials):
            return "cypht-azure (the .env this one replaced: held by no file)"
        if credential in self.copies(credentials):
            return "cypht-azure (a copy of this .env: same installation ID)"
        return "cypht-azure (this .env)"


def other_installations(app: dict[str, Any], owners: Owners, now: dt.datetime) -> list[str]:
    """The `.env` files (as `id:<installation>`, or `host:hash` for older names) that hold a live secret
    cypht-azure made for them on this registration, besides this one: their Cypht loses sign-in with it."""
    found = set()
    for c in app.get("passwordCredentials") or []:
        if is_tool_secret(c) and not owners.mine(c) and (end := parse_time(c.get("endDateTime"))) and end > now:
            mark = mark_of(c)
            found.add(f"id:{mark[0]}" if mark else str(c.get("displayName")).rsplit(" ", 1)[-1])
    return sorted(found)


def owners_for(doc: Any, env_path: Path, client_id: str) -> Owners:
    iid = recorded_installation_id(doc.get(INSTALLATION_KEY)) or derived_installation_id(env_path)
    return Owners(iid, env_path, frozenset(envstate.held_secret_ids(doc, client_id)), location_tag(env_path))


def is_tool_secret(credential: dict[str, Any]) -> bool:
    return str(credential.get("displayName") or "").startswith(cypht.SECRET_NAME_PREFIX + " ")


def made_for(credential: dict[str, Any], env_path: Path) -> bool:
    """Created by cypht-azure for this very `.env`."""
    name = str(credential.get("displayName") or "")
    return is_tool_secret(credential) and name.endswith(" " + env_tag(env_path))


def owner_label(credential: dict[str, Any], env_path: Path) -> str:
    if made_for(credential, env_path):
        return "cypht-azure (this .env)"
    if is_tool_secret(credential):
        return "cypht-azure (another .env)"
    return "someone else"


def key_id_of(credential: dict[str, Any]) -> str:
    return str(credential.get("keyId") or "").lower()


def oldest_first(credentials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return sorted(credentials, key=lambda c: parse_time(c.get("endDateTime")) or epoch)


def room_for_secret(app: dict[str, Any], owners: Owners, *, keep: set[str]) -> list[str]:
    """The secrets to remove before adding one: on personal-account apps at Entra's limit, this
    `.env`'s unused secrets, oldest first (never one it holds), then those of the file it replaced.
    Refuses when that is not enough, listing the secrets that could be deleted (never one `.env` holds)."""
    credentials = list(app.get("passwordCredentials") or [])
    if not cypht.includes_personal(str(app.get("signInAudience"))) or len(credentials) < PERSONAL_SECRET_LIMIT:
        return []
    candidates = owners.removable(credentials, keep=keep)
    candidates += [c for c in owners.replaced(credentials) if key_id_of(c) not in keep and c not in candidates]
    removed: list[str] = []
    while len(credentials) - len(removed) >= PERSONAL_SECRET_LIMIT and candidates:
        removed.append(key_id_of(candidates.pop(0)))
    if len(credentials) - len(removed) >= PERSONAL_SECRET_LIMIT:
        in_use = keep | set(owners.held)
        listed = ", ".join(f"{c.get('displayName') or '(no name)'} ({key_id_of(c)})"
                           for c in credentials if key_id_of(c) not in in_use)
        held = sorted(k for k in in_use if k in {key_id_of(c) for c in credentials})
        raise OperationFailed(
            f"The app already has {len(credentials)} client secrets, the most Entra allows for apps that "
            f"accept personal Microsoft accounts"
            + (f"; .env holds {', '.join(held)}" if held else "") + ".",
            hint="cypht-azure removes only secrets it created for this .env and that no file uses any more. "
                 f"Delete one of these in the Entra admin center (App registrations > Certificates & "
                 f"secrets) and run again: {listed}.",
        )
    return removed


@dataclass(frozen=True)
class Renewal:
    due: bool
    reason: str


def when_due(start: dt.datetime | None, end: dt.datetime | None, now: dt.datetime, *,
             rejected: bool = False) -> Renewal:
    """Renew with less than a third of the secret's lifetime left (certbot's rule), or when the secret is
    unknown, expired or refused by the token endpoint."""
    if rejected:
        return Renewal(True, "the token endpoint refuses the secret in .env")
    if end is None:
        return Renewal(True, "the expiry of the secret in .env is unknown")
    if end <= now:
        return Renewal(True, f"the secret in .env expired on {end:%Y-%m-%d %H:%M} UTC")
    if start is None or start >= end:
        return Renewal(True, "the start of the secret's lifetime is unknown")
    left, lifetime = end - now, end - start
    if left * 3 < lifetime:
        return Renewal(True, f"{_days(left)} of its {_days(lifetime)} lifetime left, less than a third")
    return Renewal(False, f"{_days(left)} of its {_days(lifetime)} lifetime left; due when a third is left, "
                          f"on {(end - lifetime / 3):%Y-%m-%d %H:%M} UTC")


def _days(delta: dt.timedelta) -> str:
    days = delta.total_seconds() / 86400
    if days >= 2:
        return f"{days:.0f} days"
    return f"{delta.total_seconds() / 3600:.1f} hours"
