"""POST /{tenant}/oauth2/v2.0/token with authorization_code and refresh_token: signin.md §7 rows 20-36, 46."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from cypht_azure.emulator import Emulator
from cypht_azure.emulator.tenants import CONSUMER_TENANT_ID

from .conftest import SignIn, redirected, web_app
from .test_signin_authorize import PERSONAL, RU, TRAILER, WORK, query

TOKEN = "/common/oauth2/v2.0/token"


def code_for(signin: SignIn, client_id: str, login: str = WORK, scope: str = "openid offline_access "
             "https://outlook.office.com/IMAP.AccessAsUser.All", tenant: str = "common", **over: str) -> str:
    r = signin.authorize(f"/{tenant}/oauth2/v2.0/authorize", query(client_id, scope=scope, **over),
                         form={"login": login, "consent": "accept"})
    return redirected(r, RU + "?")["code"]


def redeem(signin: SignIn, client_id: str, secret: str | None, code: str, /, path: str = TOKEN,
           **over: str) -> httpx.Response:
    form = {"code": code, "client_id": client_id, "client_secret": secret or "", "redirect_uri": RU,
            "grant_type": "authorization_code"}
    form.update(over)
    return signin.token(path, {k: v for k, v in form.items() if v != "-"})


def claims(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def assert_token_error(r: httpx.Response, status: int, error: str, aadsts: int, text: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == error, body
    assert body["error_codes"] == [aadsts]
    assert body["error_description"].startswith(f"AADSTS{aadsts}: {text}"), body["error_description"]
    assert TRAILER.search(body["error_description"])
    assert set(body) == {"error", "error_description", "error_codes", "timestamp", "trace_id", "correlation_id",
                         "error_uri"}


# ---------------------------------------------------------------- rows 20, 21, 46: success

def test_row_20_code_redeemed_for_tokens(emulator: Emulator, signin: SignIn) -> None:
    client_id, secret = web_app(emulator)
    r = redeem(signin, client_id, secret, code_for(signin, client_id))
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"token_type", "scope", "expires_in", "ext_expires_in", "access_token", "refresh_token",
                         "id_token"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3599
    assert body["scope"] == "https://outlook.office.com/IMAP.AccessAsUser.All openid offline_access"
    access = claims(body["access_token"])
    assert access["aud"] == "https://outlook.office.com" and access["scp"] == "IMAP.AccessAsUser.All"
    assert access["upn"] == WORK and access["tid"] == emulator.info["tenant_id"]
    ident = claims(body["id_token"])
    assert ident["aud"] == client_id and ident["preferred_username"] == WORK and ident["ver"] == "2.0"
    for name, value in {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache", "Expires": "-1",
                        "Content-Type": "application/json; charset=utf-8"}.items():
        assert r.headers[name] == value


def test_row_20_basic_auth_is_accepted_and_personal_accounts_get_msa_shapes(emulator: Emulator,
                                                                           signin: SignIn) -> None:
    client_id, secret = web_app(emulator)
    code = code_for(signin, client_id, PERSONAL, tenant="consumers")
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    r = signin.token("/consumers/oauth2/v2.0/token", {"code": code, "redirect_uri": RU,
                                                      "grant_type": "authorization_code"},
                     headers={"Authorization": f"Basic {basic}"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["access_token"].startswith("EwB") and body["refresh_token"].startswith("M.C5")
    assert body["expires_in"] == 3600
    assert claims(body["id_token"])["tid"] == CONSUMER_TENANT_ID


def test_row_21_refresh_gives_a_new_refresh_token_and_the_old_one_still_works(emulator: Emulator,
                                                                              signin: SignIn) -> None:
    client_id, secret = web_app(emulator)
    first = redeem(signin, client_id, secret, code_for(signin, client_id)).json()
    form = {"client_id": client_id, "client_secret": secret, "refresh_token": first["refresh_token"],
            "grant_type": "refresh_token"}
    r = signin.token(TOKEN, form)
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"] and second["scope"] == first["scope"]
    assert signin.token(TOKEN, form).status_code == 200  # not revoked (signin.md §3.3)
    narrowed = signin.token(TOKEN, {**form, "scope": "https://outlook.office.com/IMAP.AccessAsUser.All"})
    assert narrowed.json()["scope"] == "https://outlook.office.com/IMAP.AccessAsUser.All"
    assert_token_error(signin.token(TOKEN, {**form, "scope": "https://outlook.office.com/SMTP.Send"}), 400,
                       "invalid_scope", 70011, "The provided value for the input parameter 'scope' is not valid.")


def test_row_46_cyphts_exchange_without_scope_gets_the_authorize_scopes_and_no_refresh_token(
        emulator: Emulator, signin: SignIn) -> None:
    client_id, secret = web_app(emulator)
    code = code_for(signin, client_id, scope="https://outlook.office.com/IMAP.AccessAsUser.All")
    body = redeem(signin, client_id, secret, code).json()
    assert body["scope"] == "https://outlook.office.com/IMAP.AccessAsUser.All"
    assert "refresh_token" not in body and "id_token" not in body


# ---------------------------------------------------------------- rows 22-26: the code

def test_row_22_expired_code_work_user(emulator: Emulator, signin: SignIn) -> None:
    client_id, secret = web_app(emulator)
    emulator.directory.set_option("auth_code_lifetime", 0)
    assert_token_error(redeem(signin, client_id, secret, code_for(signin, client_id)), 400, "invalid_grant", 70008,
                       "The provided authorization code or refresh token has expired due to inactivity.")


def test_row_23_expired_or_garbage_code_personal_user(emulator: Emulator, signin: SignIn) -> None:
    client_id, secret = web_app(emulator)
    emulator.directory.set_option("auth_code_lifetime", 0)
    code = code_for(signin, client_id, PERSONAL)
    assert_token_error(redeem(signin, client_id, secret, code), 400, "invalid_grant", 70000,
                       "The provided value for the 'code' parameter is not valid. The code has expired.")
    r = redeem(signin, client_id, secret, "M.C522_BAY.2.U.00000000-0000-0000-0000-000000000000")
    assert_token_error(r, 400, "invalid_grant", 70000, "The provided value for the 'code' parameter is not valid.")
    assert "expired" not in r.json()["error_description"].split("\r\n")[0]


def test_row_24_code_used_twice(emulator: Emulator, signin: SignIn) -> None:
    client_id, secret = web_app(emulator)
    code = code_for(signin, client_id)
    assert redeem(signin, client_id, secret, code).status_code == 200
    assert_token_error(redeem(signin, client_id, secret, code), 400, "invalid_grant", 54005,
                       "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an "
                       "existing refresh token.")


def test_row_25_malformed_code(emulator: Emulator, signin: SignIn) -> None:
    client_id, secret = web_app(emulator)
    assert_token_error(redeem(signin, client_id, secret, "not-a-code"), 400, "invalid_grant", 9002313,
                       "Invalid request. Request is malformed or invalid.")


def test_row_26_redirect_uri_differs_from_the_authorize_leg(emulator: Emulator, signin: SignIn) -> None:
    other = "https://mail.example.org/other"
    client_id, secret = web_app(emulator, redirect_uris=(RU, other))
    assert_token_error(redeem(signin, client_id, secret, code_for(signin, client_id), redirect_uri=other), 401,
                       "invalid_client", 500112, f"The reply address '{other}' does not match the reply address "
                       f"'{RU}' provided when requesting Authorization code.")


def test_a_code_is_redeemed_only_where_it_was_issued(emulator: Emulator, signin: SignIn) -> None:
    client_id, secret = web_app(emulator)
    code = code_for(signin, client_id, PERSONAL, tenant="consumers")
    assert_token_error(redeem(signin, client_id, secret, code, path="/organizations/oauth2/v2.0/token"), 400,
                       "invalid_grant", 700005, "Provided Authorization Code is intended to use against other tenant")
    other_id, other_secret = web_app(emulator, name="Other")
    assert_token_error(redeem(signin, other_id, other_secret, code_for(signin, client_id)), 400, "invalid_grant",
                       70000, "Provided grant is invalid or malformed.")


def test_row_27_refresh_token_inactive_for_90_days(emulator: Emulator, signin: SignIn) -> None:
    client_id, secret = web_app(emulator)
    refresh = redeem(signin, client_id, secret, code_for(signin, client_id)).json()["refresh_token"]
    emulator.tokens.code_flow.grant.age_refresh_tokens(91 * 86400)
    r = signin.token(TOKEN, {"client_id": client_id, "client_secret": secret, "refresh_token": refresh,
                             "grant_type": "refresh_token"})
    assert_token_error(r, 400, "invalid_grant", 700082, "The refresh token has expired due to inactivity.")
    assert "was inactive for 90.00:00:00." in r.json()["error_description"]


# ---------------------------------------------------------------- rows 29-36: the client

@pytest.mark.parametrize("grant", ["authorization_code", "refresh_token"])
def test_rows_29_30_31_the_secret_is_checked_at_redemption_and_at_refresh(emulator: Emulator, signin: SignIn,
                                                                          grant: str) -> None:
    import datetime as dt

    client_id, secret = web_app(emulator)
    app = emulator.directory.get_application(app_id=client_id)
    assert app is not None
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    _, expired = emulator.directory.add_password(app["id"], end=past, start=past - dt.timedelta(days=30))
    refresh = redeem(signin, client_id, secret, code_for(signin, client_id)).json()["refresh_token"]

    def send(credential: str | None) -> httpx.Response:
        if grant == "authorization_code":
            return redeem(signin, client_id, credential, code_for(signin, client_id),
                          client_secret=credential if credential is not None else "-")
        form = {"client_id": client_id, "refresh_token": refresh, "grant_type": "refresh_token"}
        if credential is not None:
            form["client_secret"] = credential
        return signin.token(TOKEN, form)

    assert_token_error(send("wrong-secret"), 401, "invalid_client", 7000215,
                       "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                       f"secret value, not the client secret ID, for a secret added to app '{client_id}'.")
    assert_token_error(send(app["passwordCredentials"][0]["keyId"]), 401, "invalid_client", 7000215, "Invalid")
    assert_token_error(send(expired), 401, "invalid_client", 7000222,
                       f"The provided client secret keys for app '{client_id}' are expired.")
    assert_token_error(send(None), 401, "invalid_client", 7000218,
                       "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
    assert_token_error(send(""), 401, "invalid_client", 7000218, "The request body must contain")
    assert send(secret).status_code == 200


def test_row_32_public_client_with_a_secret(emulator: Emulator, signin: SignIn) -> None:
    app = emulator.directory.create_application(displayName="Desktop", signInAudience="AzureADMultipleOrgs",
                                                publicClient={"redirectUris": [RU]})
    client_id = app["appId"]
    code = code_for(signin, client_id)
    assert_token_error(redeem(signin, client_id, "anything", code), 401, "invalid_client", 700025,
                       "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.")
    assert redeem(signin, client_id, None, code).status_code == 200


def test_rows_33_34_35_unknown_app_unknown_tenant_missing_field(emulator: Emulator, signin: SignIn) -> None:
    client_id, secret = web_app(emulator)
    unknown = "99999999-aaaa-bbbb-cccc-dddddddddddd"
    assert_token_error(redeem(signin, unknown, secret, "x"), 400, "unauthorized_client", 700016,
                       f"Application with identifier '{unknown}' was not found in the directory")
    assert_token_error(redeem(signin, client_id, secret, "x", path="/nowhere.example.com/oauth2/v2.0/token"), 400,
                       "invalid_request", 90002, "Tenant 'nowhere.example.com' not found.")
    for field in ("code", "redirect_uri", "client_id"):
        r = redeem(signin, client_id, secret, "x", **{field: "-"})
        assert_token_error(r, 400, "invalid_request", 900144,
                           f"The request body must contain the following parameter: '{field}'.")


def test_row_34_client_credentials_at_an_unknown_tenant_is_invalid_request_too(emulator: Emulator,
                                                                               signin: SignIn) -> None:
    info = emulator.info
    r = signin.token("/11111111-2222-3333-4444-555555555555/oauth2/v2.0/token", {
        "grant_type": "client_credentials", "client_id": info["admin_client_id"],
        "client_secret": info["admin_client_secret"], "scope": "https://graph.microsoft.com/.default"})
    assert_token_error(r, 400, "invalid_request", 90002, "Tenant '11111111-2222-3333-4444-555555555555' not found.")


def test_row_36_consumer_only_app_at_common_token(emulator: Emulator, signin: SignIn) -> None:
    client_id, secret = web_app(emulator, "PersonalMicrosoftAccount", name="Mine")
    code = code_for(signin, client_id, PERSONAL, tenant="consumers")
    assert_token_error(redeem(signin, client_id, secret, code), 400, "invalid_request", 9002331,
                       f"Application '{client_id}'(Mine) is configured for use by Microsoft Account users only.")
    assert redeem(signin, client_id, secret, code, path="/consumers/oauth2/v2.0/token").status_code == 200


def test_row_28_spa_refresh_token_lives_24_hours_whatever_its_use(emulator: Emulator, signin: SignIn) -> None:
    app = emulator.directory.create_application(displayName="SPA", signInAudience="AzureADMultipleOrgs",
                                                spa={"redirectUris": [RU]})
    client_id = app["appId"]
    first = redeem(signin, client_id, None, code_for(signin, client_id)).json()
    form = {"client_id": client_id, "refresh_token": first["refresh_token"], "grant_type": "refresh_token"}
    emulator.tokens.code_flow.grant.age_refresh_tokens(20 * 3600)
    second = signin.token(TOKEN, form)
    assert second.status_code == 200, second.text  # used within the day, and replaced...
    emulator.tokens.code_flow.grant.age_refresh_tokens(5 * 3600)
    r = signin.token(TOKEN, {**form, "refresh_token": second.json()["refresh_token"]})
    assert_token_error(r, 400, "invalid_grant", 700084, "The refresh token was issued to a single page app (SPA), "
                       "and therefore has a fixed, limited lifetime of 1.00:00:00, which cannot be extended.")


def test_rows_37_38_client_credentials_service_principal_after_the_secret(emulator: Emulator,
                                                                          signin: SignIn) -> None:
    client_id, secret = web_app(emulator)  # no service principal
    tenant = emulator.info["tenant_id"]
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
            "scope": "https://graph.microsoft.com/.default"}
    assert_token_error(signin.token(f"/{tenant}/oauth2/v2.0/token", form), 401, "invalid_client", 7000229,
                       f"The client application {client_id} is missing service principal in the tenant {tenant}.")
    assert_token_error(signin.token(f"/{tenant}/oauth2/v2.0/token", {**form, "client_secret": "wrong"}), 401,
                       "invalid_client", 7000215, "Invalid client secret provided.")


# ---------------------------------------------------------------- PKCE (signin.md §2.1, §3.1, §3.4)

# RFC 7636 Appendix B: the verifier and its S256 challenge.
VERIFIER, CHALLENGE = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
PKCE_TEXT = "The Code_Verifier doesn't match the code_challenge supplied in the authorization request."


def test_pkce_s256_the_right_verifier_redeems_the_code(emulator: Emulator, signin: SignIn) -> None:
    client_id, secret = web_app(emulator)
    code = code_for(signin, client_id, code_challenge=CHALLENGE, code_challenge_method="S256")
    r = redeem(signin, client_id, secret, code, code_verifier=VERIFIER)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("verifier", ["-", "", CHALLENGE, VERIFIER[:-1] + "Z"], ids=["absent", "empty", "challenge",
                                                                                    "one-char-off"])
def test_pkce_s256_a_missing_or_wrong_verifier_is_501481(emulator: Emulator, signin: SignIn, verifier: str) -> None:
    client_id, secret = web_app(emulator)
    code = code_for(signin, client_id, code_challenge=CHALLENGE, code_challenge_method="S256")
    assert_token_error(redeem(signin, client_id, secret, code, code_verifier=verifier), 400, "invalid_grant",
                       501481, PKCE_TEXT)


def test_pkce_a_challenge_without_a_method_is_plain(emulator: Emulator, signin: SignIn) -> None:
    client_id, secret = web_app(emulator)
    code = code_for(signin, client_id, code_challenge=VERIFIER)
    assert_token_error(redeem(signin, client_id, secret, code, code_verifier=CHALLENGE), 400, "invalid_grant",
                       501481, PKCE_TEXT)
    assert redeem(signin, client_id, secret, code, code_verifier=VERIFIER).status_code == 200


def test_pkce_a_verifier_without_a_challenge_changes_nothing(emulator: Emulator, signin: SignIn) -> None:
    """Cypht sends no PKCE (signin.md §0): its codes redeem as before, with or without a stray verifier."""
    client_id, secret = web_app(emulator)
    assert redeem(signin, client_id, secret, code_for(signin, client_id), code_verifier=VERIFIER).status_code == 200
    assert redeem(signin, client_id, secret, code_for(signin, client_id)).status_code == 200


def test_pkce_msal_auth_code_flow_end_to_end(emulator: Emulator, signin: SignIn) -> None:
    """MSAL's own auth-code flow sends an S256 challenge and its verifier: the code redeems; a flow whose
    verifier was swapped does not."""
    import msal
    import requests

    client_id, secret = web_app(emulator)
    http = requests.Session()
    http.verify, http.trust_env = emulator.info["ca_file"], False  # not REQUESTS_CA_BUNDLE
    app = msal.ConfidentialClientApplication(client_id, client_credential=secret, http_client=http,
                                             authority=f"{emulator.base_url}/common", instance_discovery=False)
    scopes = ["https://outlook.office.com/IMAP.AccessAsUser.All"]

    def flow_and_response() -> tuple[dict[str, Any], dict[str, str]]:
        flow = app.initiate_auth_code_flow(scopes, redirect_uri=RU)
        assert "code_challenge=" in flow["auth_uri"] and "code_challenge_method=S256" in flow["auth_uri"]
        parts = urlsplit(flow["auth_uri"])
        r = signin.authorize(parts.path, dict(parse_qsl(parts.query)), form={"login": WORK, "consent": "accept"})
        return flow, redirected(r, RU + "?")

    flow, response = flow_and_response()
    result = app.acquire_token_by_auth_code_flow(flow, response)
    assert "access_token" in result, result

    flow, response = flow_and_response()
    flow["code_verifier"] = flow["code_verifier"][::-1]
    result = app.acquire_token_by_auth_code_flow(flow, response)
    assert result.get("error") == "invalid_grant" and 501481 in result.get("error_codes", []), result
