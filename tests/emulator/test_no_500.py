"""No input makes the sign-in endpoints answer 500 where Entra answers 400 (issue 18, rule 8).

A non-ASCII PKCE ``code_verifier`` is ``invalid_grant`` AADSTS501481 like any other wrong verifier
(signin.md §3.1); a malformed request line is 400; and a small fuzz over the authorize and token
endpoints' parameters (non-ASCII, very long, duplicated, missing) finds no 5xx.
"""

from __future__ import annotations

import socket
import ssl

import pytest

from cypht_azure.emulator import Emulator

from .conftest import SignIn, ca_context, web_app
from .test_signin_token import PKCE_TEXT, assert_token_error, code_for, redeem


@pytest.mark.parametrize("method", ["plain", "S256"])
@pytest.mark.parametrize("verifier", ["é" * 43, "verifier-" + "\u202e" * 40, "🙂" * 50],
                         ids=["accented", "right-to-left", "emoji"])
def test_a_non_ascii_code_verifier_is_invalid_grant_501481(emulator: Emulator, signin: SignIn, method: str,
                                                           verifier: str) -> None:
    client_id, secret = web_app(emulator)
    code = code_for(signin, client_id, code_challenge="a" * 43, code_challenge_method=method)
    assert_token_error(redeem(signin, client_id, secret, code, code_verifier=verifier), 400, "invalid_grant",
                       501481, PKCE_TEXT)


def test_a_non_ascii_code_challenge_is_no_match_either(emulator: Emulator, signin: SignIn) -> None:
    client_id, secret = web_app(emulator)
    code = code_for(signin, client_id, code_challenge="é" * 43)
    assert_token_error(redeem(signin, client_id, secret, code, code_verifier="a" * 43), 400, "invalid_grant",
                       501481, PKCE_TEXT)


@pytest.mark.parametrize("length", ["abc", "-5"])
def test_a_malformed_content_length_is_400(emulator: Emulator, length: str) -> None:
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=10) as raw, \
            ca_context(emulator).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(f"POST /common/oauth2/v2.0/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}\r\n"
                    "Content-Type: application/x-www-form-urlencoded\r\n\r\n".encode())
        try:
            answer = tls.recv(4096)
        except (ssl.SSLError, ConnectionError):
            answer = b""
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]


ODD = ["", "é", "\u202e", "\x00", "🙂", "%ff", "x" * 20000, "a b"]


def test_fuzzing_the_authorize_and_token_parameters_finds_no_5xx(emulator: Emulator, signin: SignIn) -> None:
    client_id, secret = web_app(emulator)
    good = {"client_id": client_id, "redirect_uri": "https://mail.example.org/", "response_type": "code",
            "scope": "wl.imap", "state": "nux_authorization", "login_hint": "someone@outlook.com",
            "code_challenge": "a" * 43, "code_challenge_method": "S256"}
    failures: list[tuple[str, ...]] = []
    for path in ("/common/oauth2/v2.0/authorize", "/oauth20_authorize.srf", "/é/oauth2/v2.0/authorize"):
        for name in good:
            for value in [*ODD, None]:
                params = {**good, name: value} if value is not None else {k: v for k, v in good.items() if k != name}
                for form in (None, {"login": value or "", "consent": value or ""}):
                    r = signin.authorize(path, params, form=form)
                    if r.status_code >= 500:
                        failures.append((path, name, repr(value)[:12], str(r.status_code)))
        r = signin.authorize(path, raw_query=f"client_id={client_id}&client_id=x&scope=wl.imap&scope=openid"
                             "&redirect_uri=https://mail.example.org/&response_type=code&%ff=%fe")
        if r.status_code >= 500:
            failures.append((path, "duplicates", str(r.status_code)))
    code = code_for(signin, client_id, code_challenge="a" * 43)
    base = {"grant_type": "authorization_code", "client_id": client_id, "client_secret": secret, "code": code,
            "redirect_uri": "https://mail.example.org/", "scope": "https://graph.microsoft.com/.default",
            "code_verifier": "b" * 43, "refresh_token": "x", "client_assertion": "a.b.c", "device_code": "x"}
    for path in ("/common/oauth2/v2.0/token", "/oauth20_token.srf", f"/{emulator.info['tenant_id']}/oauth2/token",
                 f"/{emulator.info['tenant_id']}/oauth2/v2.0/devicecode"):
        for grant in ("authorization_code", "refresh_token", "client_credentials",
                      "urn:ietf:params:oauth:grant-type:device_code", "é"):
            for name in base:
                for value in [*ODD, None]:
                    form = {**base, "grant_type": grant}
                    if value is None:
                        form.pop(name)
                    else:
                        form[name] = value
                    r = signin.token(path, form)
                    if r.status_code >= 500:
                        failures.append((path, grant, name, repr(value)[:12], str(r.status_code)))
    assert failures == []
