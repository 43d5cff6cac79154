"""Which client secrets are the tool's, and freeing a slot when Entra's 2-secret limit applies."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cypht_azure import cypht
from cypht_azure.errors import OperationFailed
from cypht_azure.operations.session import Session, parse_time

# Entra allows at most 2 client secrets on apps that accept personal Microsoft accounts.
PERSONAL_SECRET_LIMIT = 2


def new_secret_name(now: dt.datetime) -> str:
    return f"{cypht.SECRET_NAME_PREFIX} {now:%Y-%m-%d}"


def is_tool_secret(credential: dict[str, Any]) -> bool:
    return str(credential.get("displayName") or "").startswith(cypht.SECRET_NAME_PREFIX)


def key_id_of(credential: dict[str, Any]) -> str:
    return str(credential.get("keyId") or "").lower()


def oldest_first(credentials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return sorted(credentials, key=lambda c: parse_time(c.get("endDateTime")) or epoch)


async def make_room_for_secret(session: Session, app: dict[str, Any], *, keep: set[str | None]) -> list[str]:
    """On personal-account apps at the limit, remove the tool's own unused secrets (never one `.env` holds)."""
    credentials = list(app.get("passwordCredentials") or [])
    if not cypht.includes_personal(str(app.get("signInAudience"))) or len(credentials) < PERSONAL_SECRET_LIMIT:
        return []
    removable = [c for c in oldest_first(credentials) if is_tool_secret(c) and key_id_of(c) not in keep]
    removed: list[str] = []
    while len(credentials) - len(removed) >= PERSONAL_SECRET_LIMIT and removable:
        key = key_id_of(removable.pop(0))
        await session.graph.remove_password(str(app["id"]), key)
        removed.append(key)
    if len(credentials) - len(removed) >= PERSONAL_SECRET_LIMIT:
        listed = ", ".join(f"{c.get('displayName') or '(no name)'} ({key_id_of(c)})" for c in credentials)
        raise OperationFailed(
            f"The app already has {len(credentials)} client secrets, the most Entra allows for apps that "
            f"accept personal Microsoft accounts: {listed}.",
            hint="cypht-azure removes only secrets it created and that .env no longer uses. Delete one of "
                 "these in the Entra admin center (App registrations > Certificates & secrets) and run again.",
        )
    app["passwordCredentials"] = [c for c in credentials if key_id_of(c) not in removed]
    return removed
