"""HTTP in and out for the sign-in endpoints: authorize (v2 and login.live.com), Live's token and err.srf.

The checks and the codes are :mod:`.authorize`; this module only reads the request, asks
:class:`~.authorize.CodeFlow`, and delivers the outcome where its type says it goes.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Literal
from urllib.parse import quote_plus, urlencode

from . import exceptions as exc
from . import pages
from .authorize import AuthorizeRequest, CodeFlow, ConsentNeeded
from .identity import TokenService
from .models import Caller
from .tenants import Authority
from .wire import (
    LOGIN_JSON,
    Request,
    Response,
    aadsts_trailer,
    basic_credentials,
    live_token_error,
    login_headers,
)

Match = re.Match[str]
SignInMode = Literal["page", "auto"]
SIGN_IN_MODES: tuple[SignInMode, ...] = ("page", "auto")
MAX_LISTED_ACCOUNTS = 20
NO_STORE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache", "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer"}


def _encode(params: dict[str, str]) -> str:
    return urlencode(params, quote_via=quote_plus)


class SignInHandlers:
    """``page``: a person signs in on the emulator's pages; ``auto``: the authorize request is answered at
    once for the account ``login_hint`` names, as if that user had signed in and consented."""

    def __init__(self, tokens: TokenService, mode: SignInMode = "page") -> None:
        if mode not in SIGN_IN_MODES:
            raise ValueError(f"sign-in mode must be one of {', '.join(SIGN_IN_MODES)}, not {mode!r}")
        self.tokens = tokens
        self.flow: CodeFlow = tokens.code_flow
        self.mode = mode

    # ------------------------------------------------------------ routes

    def authorize(self, req: Request, m: Match, caller: Caller | None) -> Response:
        return self._authorize(req, lambda: self.flow.tenants.authority(m.group("tenant")))

    def live_authorize(self, req: Request, m: Match, caller: Caller | None) -> Response:
        return self._authorize(req, self.flow.tenants.live)

    def live_token(self, req: Request, m: Match, caller: Caller | None) -> Response:
        try:
            payload = self.tokens.live_token(req.form(), req.base_url, basic_credentials(req))
        except exc.TokenError as error:
            return live_token_error(req, error)
        return Response.json(200, payload, LOGIN_JSON, **login_headers(req))

    def live_error(self, req: Request, m: Match, caller: Caller | None) -> Response:
        return Response.html(200, pages.live_error(), **NO_STORE)

    # ------------------------------------------------------------ the flow

    def _authorize(self, req: Request, resolve: Callable[[], Authority]) -> Response:
        flow = self.flow
        query = req.query
        authority: Authority | None = None
        checked: AuthorizeRequest | None = None
        try:
            authority = resolve()
            checked = flow.check_client(authority, query)
            flow.check_protocol(checked, session=self.mode == "auto")
            if req.method == "POST":
                form = req.form()
                outcome = flow.sign_in(checked, form.get("login", ""), form.get("consent") or None)
            elif self.mode == "auto":
                login = query.get("login_hint") or flow.default_login(authority)
                outcome = flow.sign_in(checked, login, "accept")
            else:
                return self._signin_page(req, checked, query.get("login_hint") or "", None)
            if isinstance(outcome, ConsentNeeded):
                body = pages.consent(self._action(req), checked.app_name, outcome.account.login, outcome.account.kind,
                                     outcome.scopes)
                return Response.html(200, body, **NO_STORE)
            return self._deliver(checked, outcome.params)
        except exc.RedirectError as error:
            if checked is None:  # cannot happen: only a checked request yields redirected errors
                return self._error_page(req, authority, exc.ErrorPage(error.error, error.description, error.aadsts))
            return self._deliver(checked, self._error_params(req, checked, error))
        except exc.LoginRefusal as error:
            assert checked is not None
            login = req.form().get("login", "") if req.method == "POST" else query.get("login_hint") or ""
            return self._signin_page(req, checked, login, error.description)
        except exc.ErrorPage as error:
            return self._error_page(req, authority, error)

    def _action(self, req: Request) -> str:
        """The form posts back to the same authorize URL, with the request's parameters re-encoded."""
        path = req.raw_path.split("?", 1)[0]
        return f"{path}?{_encode(req.query)}" if req.query else path

    def _signin_page(self, req: Request, checked: AuthorizeRequest, login: str, message: str | None) -> Response:
        accounts: list[str] = []
        hint = req.query.get("login_hint")
        if hint:
            accounts.append(hint)
        if checked.authority.work:
            accounts += [u for u in self.flow.tenants.work.users() if u != hint]
        body = pages.signin(self._action(req), checked.app_name, accounts[:MAX_LISTED_ACCOUNTS], login, message)
        return Response.html(200, body, **NO_STORE)

    def _deliver(self, checked: AuthorizeRequest, params: dict[str, str]) -> Response:
        """To the checked redirect URI, in the request's response mode (signin.md §2.2)."""
        uri = checked.redirect_uri
        mode = checked.response_mode
        if mode == "form_post":
            return Response.html(200, pages.form_post(uri, checked.app_name, params), **NO_STORE)
        if mode == "fragment":
            return Response.redirect(f"{uri.split('#', 1)[0]}#{_encode(params)}", **NO_STORE)
        separator = "&" if "?" in uri else "?"
        return Response.redirect(f"{uri}{separator}{_encode(params)}", **NO_STORE)

    @staticmethod
    def _error_params(req: Request, checked: AuthorizeRequest, error: exc.RedirectError) -> dict[str, str]:
        params = {"error": error.error}
        if error.subcode:
            params["error_subcode"] = error.subcode
        if error.has_description:
            description = error.text
            if error.aadsts and not checked.authority.is_live:
                description += aadsts_trailer(req)
            params["error_description"] = description
        if error.aadsts and not checked.authority.is_live:
            params["error_uri"] = f"{req.base_url}/error?code={error.aadsts}"
        if checked.state is not None:
            params["state"] = checked.state
        return params

    def _error_page(self, req: Request, authority: Authority | None, error: exc.ErrorPage) -> Response:
        """v2: the "Sign in" error page (HTTP 200). Live: a redirect to the emulator's own err.srf, with the
        error in the fragment (signin.md §4.4). Never the redirect URI."""
        if authority is not None and authority.is_live:
            params = {"error": error.error, "error_description": error.description}
            state = req.query.get("state")
            if state is not None:
                params["state"] = state
            return Response.redirect(f"{req.base_url}/err.srf?lc=1033#{urlencode(params, quote_via=quote_plus, safe=chr(39))}",
                                     **NO_STORE)
        message = error.text if error.aadsts else f"{error.error}: {error.description}"
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = pages.error(error.title, error.heading, message, req.request_id, req.client_request_id, stamp)
        page = Response.html(200, body, **NO_STORE)
        page.error_code = f"AADSTS{error.aadsts}" if error.aadsts else error.error
        return page
