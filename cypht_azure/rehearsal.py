"""Cypht's sign-in, replayed request by request against the local emulator.

The three requests Cypht makes (cypht.md §3.1): the browser opens the authorize URL Cypht built and
comes back to CLIENT_URI with a code; Cypht's curl redeems the code (code, client_id, client_secret,
redirect_uri, grant_type, form-encoded); and, with a refresh token, refreshes it (client_id,
client_secret, refresh_token, grant_type). The user is simulated through the emulator's sign-in form
(its POST is the page's API: the account and "Accept"), so the emulator's `--sign-in page` and `auto`
modes give the same answers.

Each step's answer is reduced to one line: status, error and AADSTS text, never a code or a token.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cypht_azure import cypht, trust
from cypht_azure.secret import Secret

_MESSAGE = re.compile(r'role="alert">(?P<text>[^<]*)<')
_TRAILER = re.compile(r"\s*(Trace ID|Correlation ID|Timestamp):.*$", re.DOTALL)


@dataclass
class Step:
    name: str  # "authorize", "redeem", "refresh"
    ok: bool | None  # None: not attempted
    status: int | None
    answer: str


def _first_line(text: str) -> str:
    return _TRAILER.sub("", text).strip()


def _params(url: str) -> dict[str, str]:
    """Query and fragment parameters of a redirect (Live's err.srf carries them in the fragment)."""
    parts = urlsplit(url)
    found: dict[str, str] = {}
    for piece in (parts.query, parts.fragment):
        found.update({k: v[0] for k, v in parse_qs(piece).items()})
    return found


def _token_answer(status: int, body: Any) -> tuple[bool, str, str | None]:
    """(ok, one line, refresh token) of a token endpoint's answer."""
    if not isinstance(body, dict):
        return False, f"HTTP {status}, not JSON", None
    if status == 200 and body.get("access_token"):
        scope = body.get("scope") or "-"
        refresh = body.get("refresh_token")
        return True, (f"HTTP 200: access token ({body.get('token_type')}, scope {scope}), "
                      f"{'a refresh token' if refresh else 'no refresh token'}"), refresh
    error = body.get("error") or "no error code"
    description = _first_line(str(body.get("error_description") or ""))
    return False, f"HTTP {status}: {error}: {description}", None


class Rehearsal:
    """One HTTPS client for the three requests, trusting ``ca_file`` (the emulator's CA)."""

    def __init__(self, *, ca_file: str | None, timeout: float) -> None:
        import httpx

        verify = trust.ssl_context(ca_file)
        self._http = httpx.Client(verify=verify, timeout=timeout, follow_redirects=False)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Rehearsal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def authorize(self, url: str, client_uri: str, account: str) -> tuple[Step, str | None]:
        """Open the authorize URL; on the sign-in page, sign in as ``account`` and accept. (step, code)."""
        import httpx

        try:
            r = self._http.get(url)
            if r.status_code == 200 and 'name="login"' in r.text:
                r = self._http.post(url, data={"login": account, "consent": "accept"})
        except httpx.HTTPError as exc:
            return Step("authorize", False, None, f"no answer ({type(exc).__name__})"), None
        if r.status_code in (301, 302, 303, 307):
            location = r.headers.get("location", "")
            params = _params(location)
            target = location.split("?", 1)[0].split("#", 1)[0]
            back = target == client_uri.split("?", 1)[0]
            if back and params.get("code"):
                if params.get("state") != cypht.STATE:
                    return Step("authorize", False, r.status_code, f"redirected to {target} with a code but state "
                                f"{params.get('state')!r}, which Cypht ignores"), None
                return Step("authorize", True, r.status_code,
                            f"HTTP {r.status_code} to {target} with a code and state={cypht.STATE}"), params["code"]
            error = params.get("error", "no code")
            description = _first_line(params.get("error_description", ""))
            where = "back to CLIENT_URI" if back else f"to {target}"
            state = f" (state={params['state']})" if "state" in params else ""
            return Step("authorize", False, r.status_code,
                        f"HTTP {r.status_code} {where}{state}: {error}: {description}".rstrip(": ")), None
        if r.status_code == 200:
            alert = _MESSAGE.search(r.text)
            text = html.unescape(alert.group("text")) if alert else "a page without a code"
            return Step("authorize", False, 200, f"HTTP 200, an error page: {_first_line(text)}"), None
        if r.status_code == 404:  # an emulator from before the authorization-code flow
            return Step("authorize", None, 404, "not attempted: this emulator has no authorize endpoint"), None
        return Step("authorize", False, r.status_code, f"HTTP {r.status_code}"), None

    def _post(self, name: str, url: str, form: dict[str, str]) -> tuple[Step, str | None]:
        import httpx

        try:
            r = self._http.post(url, data=form)
        except httpx.HTTPError as exc:
            return Step(name, False, None, f"no answer ({type(exc).__name__})"), None
        try:
            body = r.json()
        except json.JSONDecodeError:
            body = None
        ok, answer, refresh = _token_answer(r.status_code, body)
        return Step(name, ok, r.status_code, answer), refresh

    def redeem(self, token_uri: str, code: str, client_id: str, secret: Secret,
               client_uri: str) -> tuple[Step, str | None]:
        """Cypht's lib/oauth2.php request_token(): these fields, in this order, no scope."""
        return self._post("redeem", token_uri, {
            "code": code, "client_id": client_id, "client_secret": secret.reveal(), "redirect_uri": client_uri,
            "grant_type": "authorization_code"})

    def refresh(self, refresh_uri: str, refresh_token: str | None, client_id: str, secret: Secret) -> Step:
        """Cypht's refresh_token(): no scope, no redirect_uri."""
        if refresh_token is None:
            return Step("refresh", None, None, "not attempted: no refresh token was issued (Cypht asks for "
                                               f"{cypht.SCOPE} only, without wl.offline_access)")
        step, _ = self._post("refresh", refresh_uri, {
            "client_id": client_id, "client_secret": secret.reveal(), "refresh_token": refresh_token,
            "grant_type": "refresh_token"})
        return step


def emulator_info(base_url: str, *, ca_file: str | None, timeout: float) -> dict[str, Any] | None:
    """The emulator's own description when ``base_url`` is one (its loopback admin endpoint), else None."""
    import httpx

    verify = trust.ssl_context(ca_file)
    try:
        r = httpx.get(f"{base_url.rstrip('/')}/_emulator/info", verify=verify, timeout=timeout)
        info = r.json() if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
    return info if isinstance(info, dict) and info.get("tenant_id") else None


def is_emulator(base_url: str, *, ca_file: str | None, timeout: float) -> bool:
    """Whether ``base_url`` is a cypht-azure emulator: its admin endpoint answers (loopback), or refuses
    with the emulator's own challenge (an emulator listening beyond loopback wants its admin's token)."""
    import httpx

    verify = trust.ssl_context(ca_file)
    try:
        r = httpx.get(f"{base_url.rstrip('/')}/_emulator/info", verify=verify, timeout=timeout)
    except httpx.HTTPError:
        return False
    if r.status_code == 401:
        return 'realm="cypht-azure emulator"' in r.headers.get("www-authenticate", "")
    try:
        return r.status_code == 200 and bool(r.json().get("tenant_id"))
    except (ValueError, AttributeError):
        return False
