"""login.live.com's endpoints: /oauth20_authorize.srf, /oauth20_token.srf, /err.srf (signin.md §4, §7 rows 39-45)."""

from __future__ import annotations

import re

import httpx
import pytest

from cypht_azure.emulator import Emulator

from .conftest import SignIn, redirected, web_app
from .test_signin_authorize import PERSONAL, RU, WORK, assert_page

AUTHORIZE = "/oauth20_authorize.srf"
TOKEN = "/oauth20_token.srf"
NOT_FOR_CONSUMERS = ("The client does not exist or is not enabled for consumers. If you are the application "
                     "developer, configure a new application through the App Registrations in the Azure Portal at "
                     "https://go.microsoft.com/fwlink/?linkid=2083908.")


def live_query(client_id: str, **over: str) -> dict[str, str]:
    q = {"client_id": client_id, "response_type": "code", "redirect_uri": RU, "scope": "wl.imap",
         "state": "nux_authorization"}
    q.update(over)
    return {k: v for k, v in q.items() if v != "-"}


def live_code(signin: SignIn, client_id: str, scope: str = "wl.imap") -> str:
    r = signin.authorize(AUTHORIZE, live_query(client_id, scope=scope), form={"login": PERSONAL, "consent": "accept"})
    return redirected(r, RU + "?")["code"]


def err_srf(emulator: Emulator, r: httpx.Response) -> dict[str, str]:
    params = redirected(r, f"{emulator.base_url}/err.srf?lc=1033#")
    assert RU not in r.headers["location"].split("#")[0]
    return params


def test_row_39_live_sign_in_and_consent_give_an_msa_code(emulator: Emulator, signin: SignIn) -> None:
    client_id, _ = web_app(emulator)
    q = live_query(client_id, login_hint=PERSONAL)
    page = signin.authorize(AUTHORIZE, q)
    assert_page(page, "Sign in", f"{PERSONAL}")
    assert f'aria-label="Sign in as {PERSONAL}"' in page.text
    assert f'aria-label="Sign in as {WORK}"' not in page.text  # work accounts do not sign in here
    assert_page(signin.authorize(AUTHORIZE, q, form={"login": PERSONAL}), "Permissions requested", "wl.imap",
                "personal account")
    params = redirected(signin.authorize(AUTHORIZE, q, form={"login": PERSONAL, "consent": "accept"}), RU + "?")
    assert list(params) == ["code", "state"] and params["state"] == "nux_authorization"
    assert re.fullmatch(r"M\.C5\d\d_BAY\.2\.U\.[0-9a-f-]{36}", params["code"])
    logged = [(e.method, e.kind, e.client_id, e.status) for e in emulator.request_log]
    assert logged == [("GET", "authorize", client_id, 200), ("POST", "authorize", client_id, 200),
                      ("POST", "authorize", client_id, 302)]


@pytest.mark.emulator(sign_in="auto")
def test_row_39_auto(emulator: Emulator, signin: SignIn) -> None:
    client_id, _ = web_app(emulator)
    params = redirected(signin.authorize(AUTHORIZE, live_query(client_id, login_hint=PERSONAL)), RU + "?")
    assert params["code"].startswith("M.C5")


@pytest.mark.parametrize("redirect_uri", ["https://elsewhere.example/", "https://mail.example.org", "-"])
def test_row_40_unregistered_redirect_goes_to_err_srf(emulator: Emulator, signin: SignIn, redirect_uri: str) -> None:
    client_id, _ = web_app(emulator)
    params = err_srf(emulator, signin.authorize(AUTHORIZE, live_query(client_id, redirect_uri=redirect_uri)))
    assert params["error"] == "invalid_request"
    if redirect_uri != "-":
        assert params["error_description"] == (
            "The provided value for the input parameter 'redirect_uri' is not valid. The expected value is a URI "
            "which matches a redirect URI registered for this client application.")
    assert params["state"] == "nux_authorization"
    location = signin.authorize(AUTHORIZE, live_query(client_id, redirect_uri="https://elsewhere.example/")
                                ).headers["location"]
    assert "#error=invalid_request&error_description=The+provided+value+for+the+input+parameter+'redirect_uri'" \
        "+is+not+valid." in location


@pytest.mark.parametrize("audience", ["AzureADMyOrg", "AzureADMultipleOrgs", None])
def test_row_41_app_without_personal_accounts_or_unknown_goes_to_err_srf(emulator: Emulator, signin: SignIn,
                                                                         audience: str | None) -> None:
    client_id = web_app(emulator, audience)[0] if audience else "99999999-aaaa-bbbb-cccc-dddddddddddd"
    params = err_srf(emulator, signin.authorize(AUTHORIZE, live_query(client_id)))
    assert params == {"error": "unauthorized_client", "error_description": NOT_FOR_CONSUMERS,
                      "state": "nux_authorization"}


def test_err_srf_is_a_page(signin: SignIn) -> None:
    assert_page(signin.authorize("/err.srf", raw_query="lc=1033"), "We're unable to complete your request")


def test_row_42_live_user_declines(emulator: Emulator, signin: SignIn) -> None:
    client_id, _ = web_app(emulator)
    r = signin.authorize(AUTHORIZE, live_query(client_id), form={"login": PERSONAL, "consent": "cancel"})
    assert redirected(r, RU + "?") == {
        "error": "access_denied",
        "error_description": "The user has denied access to the scope requested by the client application.",
        "state": "nux_authorization"}


def test_work_address_at_live_is_refused_by_the_login_ui(emulator: Emulator, signin: SignIn) -> None:
    client_id, _ = web_app(emulator)
    assert_page(signin.authorize(AUTHORIZE, live_query(client_id), form={"login": WORK}),
                "We couldn't find a Microsoft account.")


def test_live_scope_and_response_type_errors_go_back_to_the_app(emulator: Emulator, signin: SignIn) -> None:
    client_id, _ = web_app(emulator)
    params = redirected(signin.authorize(AUTHORIZE, live_query(client_id, scope="https://outlook.office.com/X")),
                        RU + "?")
    assert params == {"error": "invalid_scope",
                      "error_description": "The provided value for the input parameter 'scope' is not valid.",
                      "state": "nux_authorization"}
    params = redirected(signin.authorize(AUTHORIZE, live_query(client_id, response_type="-")), RU + "?")
    assert params["error"] == "invalid_request" and params["state"] == "nux_authorization"
    # comma-separated lists, as older Live clients send them
    assert "code" in redirected(signin.authorize(AUTHORIZE, live_query(client_id, scope="wl.imap,wl.emails"),
                                                 form={"login": PERSONAL, "consent": "accept"}), RU + "?")


# ---------------------------------------------------------------- token: rows 43-46

def live_redeem(signin: SignIn, client_id: str, secret: str, code: str) -> httpx.Response:
    return signin.token(TOKEN, {"code": code, "client_id": client_id, "client_secret": secret, "redirect_uri": RU,
                                "grant_type": "authorization_code"})


def test_row_43_and_46_live_token(emulator: Emulator, signin: SignIn) -> None:
    client_id, secret = web_app(emulator)
    r = live_redeem(signin, client_id, secret, live_code(signin, client_id))
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body) == ["token_type", "expires_in", "scope", "access_token", "user_id"]  # no refresh (row 46)
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600 and body["scope"] == "wl.imap"
    assert body["access_token"].startswith("EwB") and re.fullmatch(r"[0-9a-f]{32}", body["user_id"])
    r = live_redeem(signin, client_id, secret, live_code(signin, client_id, "wl.imap wl.offline_access"))
    body = r.json()
    assert body["scope"] == "wl.imap wl.offline_access" and body["refresh_token"].startswith("M.C5")
    refreshed = signin.token(TOKEN, {"client_id": client_id, "client_secret": secret,
                                     "refresh_token": body["refresh_token"], "grant_type": "refresh_token"})
    assert refreshed.status_code == 200 and refreshed.json()["refresh_token"] != body["refresh_token"]


def test_row_44_live_bad_expired_or_reused_code(emulator: Emulator, signin: SignIn) -> None:
    client_id, secret = web_app(emulator)
    invalid = {"error": "invalid_grant", "error_description": "The provided value for the 'code' parameter is not valid."}
    r = live_redeem(signin, client_id, secret, "M.C523_BAY.2.U.nothing")
    assert (r.status_code, r.json()) == (400, invalid)
    code = live_code(signin, client_id)
    assert live_redeem(signin, client_id, secret, code).status_code == 200
    r = live_redeem(signin, client_id, secret, code)
    assert (r.status_code, r.json()) == (400, invalid)
    emulator.directory.set_option("auth_code_lifetime", 0)
    r = live_redeem(signin, client_id, secret, live_code(signin, client_id))
    assert (r.status_code, r.json()) == (400, {
        "error": "invalid_grant",
        "error_description": "The provided value for the 'code' parameter is not valid. The code has expired."})


def test_row_45_live_bad_secret(emulator: Emulator, signin: SignIn) -> None:
    client_id, _ = web_app(emulator)
    r = live_redeem(signin, client_id, "wrong", live_code(signin, client_id))
    assert r.status_code == 401
    assert r.json() == {"error": "invalid_client", "error_description": (
        "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client "
        f"secret value, not the client secret ID, for a secret added to app '{client_id}'.")}


def test_live_token_unknown_or_excluded_client(emulator: Emulator, signin: SignIn) -> None:
    client_id, secret = web_app(emulator, "AzureADMyOrg")
    r = live_redeem(signin, client_id, secret, "x")
    assert (r.status_code, r.json()) == (400, {"error": "unauthorized_client", "error_description": NOT_FOR_CONSUMERS})
    r = signin.token(TOKEN, {"grant_type": "client_credentials", "client_id": client_id})
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"


def test_the_sandbox_emulator_signs_in_at_once(tmp_path: object) -> None:
    """`--sandbox` runs its in-process emulator with --sign-in auto: nobody could reach a page there."""
    import ssl
    from pathlib import Path

    from cypht_azure import sandbox

    info = sandbox.start(Path(str(tmp_path)))
    assert info.sign_in == "auto"
    ctx = ssl.create_default_context(cafile=info.ca_file)
    token = httpx.post(f"{info.authority_host}/{info.tenant_id}/oauth2/v2.0/token", verify=ctx, data={
        "grant_type": "client_credentials", "client_id": info.client_id, "client_secret": info.client_secret,
        "scope": "https://graph.microsoft.com/.default"}).json()["access_token"]
    app = httpx.post(f"{info.graph_url}/applications", verify=ctx, headers={"Authorization": f"Bearer {token}"},
                     json={"displayName": "sandboxed", "signInAudience": "AzureADandPersonalMicrosoftAccount",
                           "web": {"redirectUris": [RU]}, "api": {"requestedAccessTokenVersion": 2}}).json()
    r = httpx.get(f"{info.authority_host}{AUTHORIZE}", verify=ctx,
                  params=live_query(app["appId"], login_hint=PERSONAL))
    assert redirected(r, RU + "?")["code"].startswith("M.C5")
