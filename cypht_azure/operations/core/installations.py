"""The decisions `provision` makes before it changes an existing installation (issue 19).

- **A registration that serves another installation.** The URL's registration (found by its uniqueName)
  may hold a live secret another `.env` uses. Sharing it would leave each file one of the 2 client secrets
  Entra allows an app with personal accounts, and neither could rotate. A `.env` that names no
  registration therefore gets its own, under the URL's uniqueName plus its installation ID, and the
  plan says so (docs/how-it-works.md, "One registration per installation").
- **A new URL for an existing installation** (a typo in --url) is shown old -> new in the plan and
  applied only when confirmed: asked on a terminal, `--yes` elsewhere, exit 7 without.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cypht_azure import cypht, envfile
from cypht_azure.errors import NeedsConfirmation
from cypht_azure.operations.core import envstate
from cypht_azure.operations.core.secrets import other_installations, owners_for
from cypht_azure.operations.core.steps import Plan

if TYPE_CHECKING:
    from cypht_azure.operations.core.provision import Desired, ProvisionRequest


@dataclass(frozen=True)
class Shared:
    """The URL's registration, found by its uniqueName, serves another installation (another `.env` holds
    a live secret cypht-azure made for it) and this `.env` names no registration: sharing it would leave
    each file one of the 2 secrets Entra allows an app with personal accounts, and neither could rotate.
    This `.env` gets a registration of its own, under `unique_name` (the URL's, plus its installation ID)."""

    app: dict[str, Any]
    others: tuple[str, ...]  # the other installations, as `id:<installation ID>`
    unique_name: str
    installation: str


def shared_registration(request: ProvisionRequest, doc: envfile.EnvDocument, app: dict[str, Any] | None,
                        now: dt.datetime, url_unique_name: str) -> Shared | None:
    """Whether `app` (found by the URL, not named by .env or --app-id) belongs to another installation."""
    if app is None or request.app_id:
        return None
    if envstate.named_client_id(envstate.read_providers(doc, request.providers), request.env_file):
        return None
    owners = owners_for(doc, request.env_file, str(app["appId"]))
    others = other_installations(app, owners, now)
    if not others or any(owners.mine(c) for c in app.get("passwordCredentials") or []):
        return None  # nobody else holds a secret, or this installation has one there too: it is ours as well
    base = str(app.get("uniqueName") or url_unique_name)
    return Shared(app, tuple(others), f"{base}-{owners.installation[:12]}", owners.installation)


def own_registration(desired: Desired, shared: Shared) -> Desired:
    """What this installation's own registration looks like: its own uniqueName, and a display name that
    tells it apart in the Entra admin center (unless --name chose one)."""
    request = desired.request
    name = request.name or f"{desired.display_name} installation {shared.installation[:8]}"
    body = cypht.desired_registration(
        display_name=name, unique_name=shared.unique_name, audience=str(desired.body["signInAudience"]),
        redirect_uris=desired.redirect_uris, url=request.url or desired.redirect_uris[0])
    return dataclasses.replace(desired, display_name=name, unique_name=shared.unique_name, body=body)


def shared_note(shared: Shared, env_path: Path, own: dict[str, Any] | None) -> str:
    app = shared.app
    return (f"The registration for this URL ({app.get('appId')}, {app.get('displayName')!r}) serves another "
            f"installation ({', '.join(shared.others)}), which holds one of its client secrets. Sharing it would "
            f"leave each .env one of the 2 secrets Entra allows and neither could rotate, so {env_path} "
            + ("keeps its own registration" if own else "gets its own registration")
            + f" (uniqueName {shared.unique_name}). If that installation is gone, delete its registration: "
            f"`deprovision --app-id {app.get('appId')}` with that installation's .env, or in the Entra admin center.")



def url_changes(doc: envfile.EnvDocument, request: ProvisionRequest, desired: Desired,
                named: str | None) -> list[tuple[str, str, str]]:
    """(key, old, new) for each *_CLIENT_URI of an existing installation (its `.env` names a client ID)
    that this run would point at another URL: a typo in --url must not pass unnoticed. The form Cypht's
    docs suggested (`…/?page=home`) becoming the bare URL is no change of URL."""
    if not named:
        return []
    found = []
    for state in envstate.read_providers(doc, request.providers).values():
        old = (state.client_uri or "").strip()
        if not old or old == desired.primary_uri:
            continue
        try:
            same = cypht.redirect_uri_for(old.split("?", 1)[0]) == desired.primary_uri
        except cypht.InvalidInput:
            same = False
        if not same:
            found.append((state.keys.client_uri, old, desired.primary_uri))
    return found


def url_change_notes(changes: list[tuple[str, str, str]]) -> list[str]:
    if not changes:
        return []
    olds = sorted({old for _, old, _ in changes})
    return [f"Change Cypht's URL: {key} {old} → {new}." for key, old, new in changes] + [
        f"The registration keeps its redirect URI {', '.join(olds)} and gets {changes[0][2]}; once Cypht "
        f"works at the new URL, drop the old one with --remove-redirect-uri {olds[0]}."]


def confirm_url_change(request: ProvisionRequest, plan: Plan, changes: list[tuple[str, str, str]]) -> None:
    """A new URL for an existing installation is applied only when confirmed: on a terminal by answering
    the plan's question, elsewhere with --yes (exit 7 without)."""
    if not changes or request.yes or request.dry_run:
        return
    first = changes[0]
    if request.confirm is None:
        raise NeedsConfirmation(
            f"{request.env_file} is set up for {first[1]}; this run would change Cypht's URL to {first[2]} "
            f"({', '.join(key for key, _, _ in changes)}), which needs confirmation.",
            hint="Check the URL: if it is a typo, run again with the right --url. To change it, run on a "
                 "terminal to be asked, or pass --yes (see --dry-run for the plan).")
    question = "\n".join([*plan.notes, *(f"- {s.summary()}" for s in plan.steps), "Go ahead?"])
    if not request.confirm(question):
        raise NeedsConfirmation("Nothing was changed: the new URL was not confirmed.")
