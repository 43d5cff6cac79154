"""The sign-in pages: templates in ``templates/*.html`` filled by one helper that escapes every value."""

from __future__ import annotations

import functools
import html
import string
from collections.abc import Iterable
from importlib import resources


class Markup(str):
    """Text that is already HTML: only :func:`render` makes it, so nothing else escapes the escaping."""


@functools.cache
def _template(name: str) -> string.Template:
    return string.Template(resources.files(__package__).joinpath("templates").joinpath(name).read_text(encoding="utf-8"))


def render(name: str, /, **values: object) -> Markup:
    """Fill template ``name``; every value is HTML-escaped unless it is Markup from an earlier render()."""
    escaped = {key: value if isinstance(value, Markup) else html.escape(str(value), quote=True)
               for key, value in values.items()}
    return Markup(_template(name).substitute(escaped))


def join(parts: Iterable[Markup]) -> Markup:
    return Markup("\n".join(parts))


def document(title: str, body: Markup) -> bytes:
    return render("layout.html", title=title, body=body).encode("utf-8")


def signin(action: str, app_name: str, accounts: list[str], login: str, message: str | None) -> bytes:
    listed = render("accounts.html", items=join(render("account.html", action=action, login=a) for a in accounts)) \
        if accounts else Markup("")
    body = render("signin.html", heading="Sign in", app_name=app_name or "the application", action=action,
                  accounts=listed, login=login, message=render("message.html", text=message) if message else Markup(""))
    return document("Sign in to your account", body)


def consent(action: str, app_name: str, login: str, kind: str, scopes: list[str]) -> bytes:
    body = render("consent.html", app_name=app_name or "The application", login=login, kind=kind, action=action,
                  scopes=join(render("scope.html", scope=s) for s in scopes))
    return document("Permissions requested", body)


def error(title: str, heading: str, message: str, request_id: str, correlation_id: str, timestamp: str) -> bytes:
    body = render("error.html", heading=heading, message=message, request_id=request_id,
                  correlation_id=correlation_id, timestamp=timestamp)
    return document(title, body)


def form_post(redirect_uri: str, app_name: str, fields: dict[str, str]) -> bytes:
    body = render("form_post.html", redirect_uri=redirect_uri, app_name=app_name or "the application",
                  fields=join(render("hidden.html", name=k, value=v) for k, v in fields.items()))
    return document("Working...", body)


def live_error() -> bytes:
    return document("We're unable to complete your request", render("live_error.html"))
