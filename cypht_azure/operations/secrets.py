"""Which client secrets are the tool's (and for which `.env`), and freeing a slot under Entra's 2-secret limit.

A secret's display name records who made it: `cypht-azure 2026-11-28 mail1:3fa9c2d1`, where the
last part names the `.env` it was written to (host name and a hash of the file's real path).
Cleanup only ever removes secrets made for the same `.env`: two Cypht servers sharing one app
registration, each with its own `.env`, never remove each other's live secret.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cypht_azure import cypht
from cypht_azure.errors import OperationFailed
from cypht_azure.operations import envstate
from cypht_azure.operations.session import parse_time

# Entra allows at most 2 client secrets on apps that accept personal Microsoft accounts.
PERSONAL_SECRET_LIMIT = 2


def env_tag(env_path: Path) -> str:
    real = envstate.real_path(env_path)  # resolved once: a link re-pointed meanwhile changes nothing
    host = socket.gethostname().split(".")[0][:24] or "host"
    digest = hashlib.sha256(f"{socket.gethostname()}:{real}".encode()).hexdigest()[:8]
    return f"{host}:{digest}"


def new_secret_name(now: dt.datetime, env_path: Path) -> str:
    return f"{cypht.SECRET_NAME_PREFIX} {now:%Y-%m-%d} {env_tag(env_path)}"


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


def removable(credentials: list[dict[str, Any]], env_path: Path, *, keep: set[str]) -> list[dict[str, Any]]:
    """Secrets made for this `.env` that it no longer holds: safe to remove, oldest first."""
    return [c for c in oldest_first(credentials) if made_for(c, env_path) and key_id_of(c) not in keep]


def room_for_secret(app: dict[str, Any], env_path: Path, *, keep: set[str]) -> list[str]:
    """The secrets to remove before adding one: on personal-account apps at Entra's limit, this
    `.env`'s unused secrets, oldest first (never one it holds). Refuses when that is not enough."""
    credentials = list(app.get("passwordCredentials") or [])
    if not cypht.includes_personal(str(app.get("signInAudience"))) or len(credentials) < PERSONAL_SECRET_LIMIT:
        return []
    candidates = removable(credentials, env_path, keep=keep)
    removed: list[str] = []
    while len(credentials) - len(removed) >= PERSONAL_SECRET_LIMIT and candidates:
        removed.append(key_id_of(candidates.pop(0)))
    if len(credentials) - len(removed) >= PERSONAL_SECRET_LIMIT:
        listed = ", ".join(f"{c.get('displayName') or '(no name)'} ({key_id_of(c)})" for c in credentials)
        raise OperationFailed(
            f"The app already has {len(credentials)} client secrets, the most Entra allows for apps that "
            f"accept personal Microsoft accounts: {listed}.",
            hint="cypht-azure removes only secrets it created for this .env and that .env no longer uses. "
                 "Delete one of these in the Entra admin center (App registrations > Certificates & "
                 "secrets) and run again.",
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
