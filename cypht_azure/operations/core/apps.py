"""Finding the app registration a command is about: --app-id, else the client ID in `.env`, else --url."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cypht_azure import cypht, envfile
from cypht_azure.errors import AppNotFound, InputError
from cypht_azure.operations.core import envstate
from cypht_azure.operations.core.session import Session


@dataclass
class Target:
    """How the user named the app, resolved before any Graph call."""

    app_id: str | None = None
    unique_name: str | None = None
    source: str = ""
    explicit: bool = False  # named by --app-id: the user takes responsibility for a foreign app
    # --url given besides --app-id or a .env that names an app: that app must be the one for the URL.
    url: str | None = None
    redirect_uri: str | None = None


def choose_target(
    doc: envfile.EnvDocument, env_path: Path, *, app_id: str | None, url: str | None, report_only: bool = False,
) -> Target:
    """report_only (status): blocks that name different apps are a finding, not a reason to stop.

    --url with --app-id, or with a .env that names an app, is checked against that app once it is
    read (`fetch_app`): acting on another app than the URL's would be the wrong answer, silently."""
    uri = None
    if url:
        try:
            uri = cypht.redirect_uri_for(url)
            # A URL provision would refuse names no app it made: say so instead of asking Graph.
            cypht.validate_redirect_uris([uri], "AzureADMyOrg")
        except cypht.InvalidInput as exc:
            raise InputError(str(exc)) from None
    unique_name = cypht.unique_name_for(uri) if uri else None
    if app_id:
        return Target(app_id=require_guid(app_id, "--app-id"), source="--app-id", explicit=True,
                      unique_name=unique_name, url=url, redirect_uri=uri)
    states = envstate.read_providers(doc, list(cypht.PROVIDERS))
    if report_only:
        ids = [s.client_id for s in states.values() if s.client_id]
        named = ids[0] if ids else None
    else:
        named = envstate.named_client_id(states, env_path)
    if named:
        return Target(app_id=require_guid(named, f"{env_path} (*_CLIENT_ID)"), source=str(env_path), unique_name=unique_name, url=url,
                      redirect_uri=uri)
    if uri:
        return Target(unique_name=unique_name, source="--url")
    raise InputError(
        f"{env_path} names no client ID (OUTLOOK_CLIENT_ID / OFFICE365_CLIENT_ID).",
        hint="Give --env-file (the .env that `provision` wrote), --app-id or --url; "
             "or run `cypht-azure provision` first.",
    )


def require_guid(value: str, source: str) -> str:
    """An application (client) ID, lower-cased; anything else is refused before it reaches a Graph URL or
    an OData filter."""
    import uuid

    text = value.strip()
    try:
        uuid.UUID(text)
    except ValueError:
        text = ""
    if len(text) != 36:
        raise InputError(f"{value!r} from {source} is not an application (client) ID; it looks like "
                         "00000000-0000-0000-0000-000000000000 (Entra admin center > App registrations).")
    return text.lower()


async def fetch_app(session: Session, target: Target, *, select: list[str] | None = None) -> dict[str, Any] | None:
    if target.app_id:
        app = await session.graph.get_application(app_id=target.app_id, select=select)
        if app is not None and target.url:
            require_url(app, target)
        return app
    return await session.graph.get_application(unique_name=target.unique_name, select=select)


def require_url(app: dict[str, Any], target: Target) -> None:
    """The app named by --app-id or .env must be the one --url means: made for it, or serving it."""
    uris = list((app.get("web") or {}).get("redirectUris") or [])
    if app.get("uniqueName") == target.unique_name or target.redirect_uri in uris:
        return
    raise InputError(
        f"--url {cypht.shown(target.url or '')} is not the URL of the app registration {app.get('appId')} "
        f"({app.get('displayName')!r}) that {target.source} names: its redirect URIs are "
        f"{', '.join(uris) or 'none'}.",
        hint=f"Drop --url to act on the app {target.source} names, or give the .env (--env-file) or --app-id "
             "of the app that serves that URL.",
    )


async def find_deleted(session: Session, target: Target) -> dict[str, Any] | None:
    """The deleted (restorable) app the target names: by client ID, or by the URL's uniqueName."""
    if target.app_id:
        query = f"appId eq '{target.app_id}'"
    elif target.unique_name:
        query = f"uniqueName eq '{target.unique_name}'"
    else:
        return None
    deleted = await session.graph.list_deleted_applications(
        filter=query, select=["id", "appId", "displayName", "deletedDateTime", "uniqueName"])
    return deleted[0] if deleted else None


def not_found(target: Target, session: Session) -> AppNotFound:
    what = target.app_id or f"for this URL ({target.unique_name})"
    return AppNotFound(
        f"No app registration {what} (named by {target.source}) exists in tenant {session.tenant_id}.",
        hint=f"It may have been deleted (restore it within 30 days with `cypht-azure restore --app-id "
             f"{target.app_id or '<client ID>'}`) "
             "or belong to another tenant (check --tenant).",
    )


def require_ours(app: dict[str, Any], target: Target) -> None:
    """Never act on an app the tool did not create unless the user named it with --app-id."""
    if target.explicit or cypht.TAG in (app.get("tags") or []):
        return
    raise InputError(
        f"The app registration {app.get('appId')} ({app.get('displayName')!r}) named by {target.source} "
        "was not created by cypht-azure.",
        hint=f"To act on it anyway, name it explicitly with --app-id {app.get('appId')}.",
    )
