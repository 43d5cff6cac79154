"""GET/POST /{tenant}/oauth2/v2.0/authorize: signin.md §7 rows 1-19, row by row, over plain HTTPS.

Errors before the client and redirect URI are checked are the emulator's page (HTTP 200, no Location);
after that they go back to the redirect URI with ``state`` (signin.md §2.3-§2.6).
"""

from __future__ import annotations

import re

import pytest

from cypht_azure.emulator import Emulator

from .conftest import SignIn, redirected, web_app

RU = "https://mail.example.org/"
WORK = "admin@cyphtemulator.onmicrosoft.com"
PERSONAL = "bob@outlook.com"
OUTLOOK_SCOPES = "openid offline_access https://outlook.office.com/IMAP.AccessAsUser.All"
TRAILER = re.compile(r"\r\nTrace ID: [0-9a-f-]{36}\r\nCorrelation ID: [0-9a-f-]{36}\r\nTimestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$")


def query(client_id: str, **over: str) -> dict[str, str]:
    q = {"client_id": client_id, "response_type": "code", "redirect_uri": RU, "scope": OUTLOOK_SCOPES,
         "state": "st-123"}
    q.update(over)
    return {k: v for k, v in q.items() if v != "-"}


def page_text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#x27;", "'")


def assert_page(r: object, *fragments: str) -> str:
    import httpx

    assert isinstance(r, httpx.Response)
    assert r.status_code == 200, (r.status_code, r.headers.get("location"))
    assert "location" not in r.headers
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    text = page_text(r.text)
    for fragment in fragments:
        assert fragment in text, (fragment, text[:2000])
    return text


def assert_error(params: dict[str, str], error: str, aadsts: int | None, text: str, state: str | None = "st-123") -> None:
    assert params["error"] == error, params
    description = params["error_description"]
    if aadsts is None:
        assert description == text
        assert "error_uri" not in params
    else:
        assert description.startswith(f"AADSTS{aadsts}: {text}"), description
        assert TRAILER.search(description), description
        assert params["error_uri"].endswith(f"/error?code={aadsts}")
    assert params.get("state") == state
    assert "code" not in params


V2 = "/common/oauth2/v2.0/authorize"


# ---------------------------------------------------------------- row 1: success, and the page that gets there

def test_row_1_page_sign_in_then_consent_then_code(emulator: Emulator, signin: SignIn) -> None:
    client_id, _ = web_app(emulator)
    q = query(client_id, login_hint=WORK)
    text = assert_page(signin.authorize(V2, q), "Sign in", "to continue to Cypht webmail", "Email, phone, or Skype")
    assert f'aria-label="Sign in as {WORK}"' in signin.authorize(V2, q).text
    consent = signin.authorize(V2, q, form={"login": WORK})
    text = assert_page(consent, "Permissions requested", WORK, "https://outlook.office.com/IMAP.AccessAsUser.All",
                       "offline_access")
    assert ">Accept</button>" in consent.text and ">Cancel</button>" in consent.text
    params = redirected(signin.authorize(V2, q, form={"login": WORK, "consent": "accept"}), RU + "?")
    assert list(params) == ["code", "state", "session_state"]
    assert params["state"] == "st-123" and params["code"].startswith("0.A")
    assert re.fullmatch(r"[0-9a-f-]{36}", params["session_state"])
    assert text


def test_row_1_response_modes_fragment_and_form_post(emulator: Emulator, signin: SignIn) -> None:
    client_id, _ = web_app(emulator)
    done = {"login": WORK, "consent": "accept"}
    params = redirected(signin.authorize(V2, query(client_id, response_mode="fragment"), form=done), RU + "#")
    assert set(params) == {"code", "state", "session_state"}
    r = signin.authorize(V2, query(client_id, response_mode="form_post"), form=done)
    assert_page(r, "Continue to Cypht webmail")
    assert f'<form method="post" action="{RU}">' in r.text
    assert re.search(r'<input type="hidden" name="code" value="0\.A[^"]+">', r.text)
    assert '<input type="hidden" name="state" value="st-123">' in r.text


def test_row_1_state_absent_is_not_invented_and_extra_google_parameters_are_ignored(
        emulator: Emulator, signin: SignIn) -> None:
    client_id, _ = web_app(emulator)
    q = query(client_id, state="-", approval_prompt="force", access_type="offline")
    params = redirected(signin.authorize(V2, q, form={"login": WORK, "consent": "accept"}), RU + "?")
    assert set(params) == {"code", "session_state"}


@pytest.mark.emulator(sign_in="auto")
def test_row_1_auto_signs_in_the_login_hint_at_once(emulator: Emulator, signin: SignIn) -> None:
    client_id, _ = web_app(emulator)
    params = redirected(signin.authorize(V2, query(client_id, login_hint=WORK)), RU + "?")
    assert params["state"] == "st-123" and params["code"].startswith("0.A")
    params = redirected(signin.authorize("/consumers/oauth2/v2.0/authorize",
                                         query(client_id, login_hint=PERSONAL)), RU + "?")
    assert params["code"].startswith("M.C5")


def test_redirect_uri_with_a_query_gets_the_code_appended(emulator: Emulator, signin: SignIn) -> None:
    uri = "https://mail.example.org/?page=home"
    client_id, _ = web_app(emulator, "AzureADMultipleOrgs", (uri,))
    r = signin.authorize(V2, query(client_id, redirect_uri=uri), form={"login": WORK, "consent": "accept"})
    assert r.headers["location"].startswith(uri + "&code=")


# ---------------------------------------------------------------- rows 2-6: pages, never a redirect

@pytest.mark.parametrize(("tenant", "text"), [
    ("11111111-2222-3333-4444-555555555555",
     "AADSTS90002: Tenant '11111111-2222-3333-4444-555555555555' not found. Check to make sure you have the correct"),
    ("nowhere.example.com", "AADSTS90002: Tenant 'nowhere.example.com' not found."),
    ("authorize", "AADSTS900023: Specified tenant identifier 'authorize' is neither a valid DNS name, nor a valid "
                  "external domain."),
])
def test_row_2_unknown_or_malformed_tenant_is_a_page(emulator: Emulator, signin: SignIn, tenant: str,
                                                     text: str) -> None:
    client_id, _ = web_app(emulator)
    assert_page(signin.authorize(f"/{tenant}/oauth2/v2.0/authorize", query(client_id)),
                "Sorry, but we're having trouble signing you in.", text, "Request Id:", "Correlation Id:",
                "Timestamp:")


def test_row_3_client_id_missing_is_a_page(signin: SignIn) -> None:
    assert_page(signin.authorize(V2, query("-")),
                "AADSTS900144: The request body must contain the following parameter: 'client_id'.")


def test_row_4_unknown_client_is_a_page_naming_the_directory(emulator: Emulator, signin: SignIn) -> None:
    unknown = "99999999-aaaa-bbbb-cccc-dddddddddddd"
    tenant = emulator.info["tenant_id"]
    assert_page(signin.authorize(f"/{tenant}/oauth2/v2.0/authorize", query(unknown)),
                "Sorry, but we're having trouble signing you in.",
                f"AADSTS700016: Application with identifier '{unknown}' was not found in the directory "
                "'cypht-azure emulator'.")


def test_row_5_unknown_client_at_common_for_a_personal_user(signin: SignIn) -> None:
    assert_page(signin.authorize(V2, query("99999999-aaaa-bbbb-cccc-dddddddddddd", login_hint=PERSONAL)),
                "We're unable to complete your request",
                "unauthorized_client: The client does not exist or is not enabled for consumers.")


@pytest.mark.parametrize(("sent", "text"), [
    ("https://elsewhere.example/", "AADSTS50011: The redirect URI 'https://elsewhere.example/' specified in the "
                                   "request does not match the redirect URIs configured for the application"),
    ("https://Mail.example.org/", "AADSTS50011: The redirect URI 'https://Mail.example.org/'"),  # case counts
    ("https://mail.example.org", "AADSTS50011: The redirect URI 'https://mail.example.org'"),  # so does the slash
    ("https://mail.example.org/?page=home", "AADSTS50011:"),
    ("-", "AADSTS900971: No reply address provided."),
    ("mail.example.org", "AADSTS90102: 'redirect_uri' value must be a valid absolute URI."),
])
def test_row_6_redirect_uri_not_registered_or_missing_is_a_page(emulator: Emulator, signin: SignIn, sent: str,
                                                                text: str) -> None:
    client_id, _ = web_app(emulator)
    assert_page(signin.authorize(V2, query(client_id, redirect_uri=sent)), text)
    # Not even after a sign-in or a consent: the POST is checked the same way.
    assert_page(signin.authorize(V2, query(client_id, redirect_uri=sent), form={"login": WORK, "consent": "accept"}),
                text)


# ---------------------------------------------------------------- rows 7-19: back to the checked redirect URI

def test_row_7_response_type_missing_is_redirected(emulator: Emulator, signin: SignIn) -> None:
    client_id, _ = web_app(emulator)
    params = redirected(signin.authorize(V2, query(client_id, response_type="-")), RU + "?")
    assert_error(params, "invalid_request", 900144,
                 "The request body must contain the following parameter: 'response_type'.")
    assert list(params) == ["error", "error_description", "error_uri", "state"]


def test_row_7_other_request_errors_are_redirected(emulator: Emulator, signin: SignIn) -> None:
    client_id, _ = web_app(emulator)
    params = redirected(signin.authorize(V2, query(client_id, response_type="token")), RU + "?")
    assert_error(params, "unsupported_response_type", 70005, "The provided value for the input parameter "
                 "'response_type' is not allowed for this client.")
    params = redirected(signin.authorize(V2, query(client_id, scope="-")), RU + "?")
    assert_error(params, "invalid_scope", 70011, "The provided request must include a 'scope' input parameter.")
    params = redirected(signin.authorize(V2, query(client_id, scope="https://outlook.office.com/")), RU + "?")
    assert_error(params, "invalid_scope", 70011, "The provided request must include a 'scope' input parameter. "
                 "The provided value for the input parameter 'scope' is not valid. The scope "
                 "https://outlook.office.com/ is not valid. The scope format is invalid.")
    params = redirected(signin.authorize(V2, query(client_id, response_mode="bogus")), RU + "?")
    assert_error(params, "invalid_request", 70007, "The value 'bogus' for the input parameter 'response_mode'")


def test_row_8_single_tenant_app_at_common_work_user_after_sign_in(emulator: Emulator, signin: SignIn) -> None:
    client_id, _ = web_app(emulator, "AzureADMyOrg", name="Single")
    assert_page(signin.authorize(V2, query(client_id)), "Sign in")  # nothing is known before the sign-in
    params = redirected(signin.authorize(V2, query(client_id), form={"login": WORK}), RU + "?")
    assert_error(params, "invalid_request", 50194, f"Application '{client_id}'(Single) is not configured as a "
                 "multi-tenant application. Usage of the /common endpoint is not supported for such applications "
                 "created after '10/15/2018'.")
    # At the tenant's own endpoint the same app and user sign in.
    tenant = emulator.info["tenant_id"]
    done = {"login": WORK, "consent": "accept"}
    assert "code" in redirected(signin.authorize(f"/{tenant}/oauth2/v2.0/authorize", query(client_id), form=done),
                                RU + "?")


def test_row_9_single_tenant_app_personal_user_at_common(emulator: Emulator, signin: SignIn) -> None:
    client_id, _ = web_app(emulator, "AzureADMyOrg")
    assert_page(signin.authorize(V2, query(client_id), form={"login": PERSONAL}),
                "We're unable to complete your request",
                "unauthorized_client: The client does not exist or is not enabled for consumers.")


@pytest.mark.parametrize("audience", ["AzureADMyOrg", "AzureADMultipleOrgs"])
def test_row_10_entra_only_app_at_consumers(emulator: Emulator, signin: SignIn, audience: str) -> None:
    client_id, _ = web_app(emulator, audience, name="Org app")
    params = redirected(signin.authorize("/consumers/oauth2/v2.0/authorize", query(client_id)), RU + "?")
    assert_error(params, "invalid_request", 9002332, f"Application '{client_id}'(Org app) is configured for use by "
                 "Microsoft Entra users only. Please do not use the /consumers endpoint to serve this request.")


@pytest.mark.parametrize(("path", "audience"), [
    (V2, "AzureADMultipleOrgs"),
    ("/organizations/oauth2/v2.0/authorize", "AzureADandPersonalMicrosoftAccount"),
    ("/organizations/oauth2/v2.0/authorize", "AzureADMultipleOrgs"),
])
def test_row_11_personal_account_refused_by_the_login_ui(emulator: Emulator, signin: SignIn, path: str,
                                                         audience: str) -> None:
    client_id, _ = web_app(emulator, audience)
    text = assert_page(signin.authorize(path, query(client_id), form={"login": PERSONAL}),
                       "You can't sign in here with a personal account. Use your work or school account instead.")
    assert "Email, phone, or Skype" in text  # the sign-in form again


def test_row_12_consumer_only_app_at_common(emulator: Emulator, signin: SignIn) -> None:
    client_id, _ = web_app(emulator, "PersonalMicrosoftAccount")
    params = redirected(signin.authorize(V2, query(client_id)), RU + "?")
    assert_error(params, "invalid_request", None,
                 "The request is not valid for the application's 'userAudience' configuration. In order to use "
                 "/common/ endpoint, the application must not be configured with 'Consumer' as the user audience. "
                 "The userAudience should be configured with 'All' to use /common/ endpoint.")


def test_row_13_consumer_only_app_at_organizations(emulator: Emulator, signin: SignIn) -> None:
    client_id, _ = web_app(emulator, "PersonalMicrosoftAccount", name="Mine")
    params = redirected(signin.authorize("/organizations/oauth2/v2.0/authorize", query(client_id)), RU + "?")
    assert_error(params, "invalid_request", 9002331, f"Application '{client_id}'(Mine) is configured for use by "
                 "Microsoft Account users only. Please use the /consumers endpoint to serve this request.")


def test_row_14_personal_user_at_a_tenant_endpoint(emulator: Emulator, signin: SignIn) -> None:
    client_id, _ = web_app(emulator)
    for tenant in (emulator.info["tenant_id"], emulator.info["tenant_domain"]):
        assert_page(signin.authorize(f"/{tenant}/oauth2/v2.0/authorize", query(client_id), form={"login": PERSONAL}),
                    f"AADSTS500200: User account '{PERSONAL}' is a personal Microsoft account. Personal Microsoft "
                    "accounts are not supported for this application unless explicitly invited to an organization.")


@pytest.mark.parametrize("login", [WORK, "nobody@cyphtemulator.onmicrosoft.com"])
def test_row_15_work_address_at_consumers(emulator: Emulator, signin: SignIn, login: str) -> None:
    client_id, _ = web_app(emulator)
    assert_page(signin.authorize("/consumers/oauth2/v2.0/authorize", query(client_id), form={"login": login}),
                "We couldn't find a Microsoft account. Try entering your details again, or create an account.",
                "Email, phone, or Skype")


def test_row_16_wl_imap_at_v2_work_user_after_sign_in(emulator: Emulator, signin: SignIn) -> None:
    client_id, _ = web_app(emulator, name="Cypht webmail (mail.example.org)")
    q = query(client_id, scope="wl.imap", state="nux_authorization")
    assert_page(signin.authorize(V2, q), "Sign in")
    params = redirected(signin.authorize(V2, q, form={"login": WORK}), RU + "?")
    assert_error(params, "invalid_client", 650053, "The application 'Cypht webmail (mail.example.org)' asked for "
                 "scope 'wl.imap' that doesn't exist on the resource '00000003-0000-0000-c000-000000000000'. "
                 "Contact the app vendor.", state="nux_authorization")


def test_row_17_wl_scopes_for_a_personal_user_at_v2_are_configurable(emulator: Emulator, signin: SignIn) -> None:
    client_id, _ = web_app(emulator)
    path = "/consumers/oauth2/v2.0/authorize"
    q = query(client_id, scope="wl.imap wl.offline_access")
    params = redirected(signin.authorize(path, q, form={"login": PERSONAL}), RU + "?")
    assert_error(params, "invalid_client", 650053, "The application 'Cypht webmail' asked for scope 'wl.imap'")
    emulator.directory.set_option("v2_personal_wl_scopes", "accept")
    params = redirected(signin.authorize(path, q, form={"login": PERSONAL, "consent": "accept"}), RU + "?")
    assert params["code"].startswith("M.C5")


def test_row_18_user_declines_consent(emulator: Emulator, signin: SignIn) -> None:
    client_id, _ = web_app(emulator)
    params = redirected(signin.authorize(V2, query(client_id), form={"login": WORK, "consent": "cancel"}), RU + "?")
    assert list(params)[:2] == ["error", "error_subcode"] and params["error_subcode"] == "cancel"
    assert_error(params, "access_denied", 65004, "User declined to consent to access the app.")


def test_row_19_prompt_none_without_a_session(emulator: Emulator, signin: SignIn) -> None:
    client_id, _ = web_app(emulator)
    params = redirected(signin.authorize(V2, query(client_id, prompt="none")), RU + "?")
    assert_error(params, "login_required", 50058, "A silent sign-in request was sent but no user is signed in.")


def test_consent_creates_the_service_principal_in_the_users_tenant(emulator: Emulator, signin: SignIn) -> None:
    client_id, _ = web_app(emulator)
    assert emulator.directory.get_service_principal(client_id) is None
    redirected(signin.authorize(V2, query(client_id), form={"login": PERSONAL, "consent": "accept"}), RU + "?")
    assert emulator.directory.get_service_principal(client_id) is None  # a personal account has no SP to make
    redirected(signin.authorize(V2, query(client_id), form={"login": WORK, "consent": "accept"}), RU + "?")
    assert emulator.directory.get_service_principal(client_id) is not None


def test_unknown_scope_on_outlook_and_an_unknown_resource(emulator: Emulator, signin: SignIn) -> None:
    client_id, _ = web_app(emulator)
    q = query(client_id, scope="https://outlook.office.com/Nope.All")
    params = redirected(signin.authorize(V2, q, form={"login": WORK}), RU + "?")
    assert_error(params, "invalid_scope", 70011, "The provided value for the input parameter 'scope' is not valid. "
                 "The scope 'https://outlook.office.com/Nope.All' does not exist.")
    assert_page(signin.authorize(V2, query(client_id, scope="https://api.example.com/x"), form={"login": WORK}),
                "AADSTS500011: The resource principal named https://api.example.com was not found")


# ---------------------------------------------------------------- everything echoed comes back escaped

def test_every_echoed_value_is_escaped(emulator: Emulator, signin: SignIn) -> None:
    evil = "<script>alert(1)</script>"
    client_id, _ = web_app(emulator, name=f"App {evil}")
    pages = [
        signin.authorize(V2, query(client_id, login_hint=f'x"{evil}@outlook.com')),  # sign-in page, hint
        signin.authorize(V2, query(client_id), form={"login": f"{evil}@outlook.com"}),  # consent page, login
        signin.authorize(V2, query(client_id, scope=f"openid {evil}")),  # redirected, not echoed: check below
        signin.authorize(V2, query(client_id, redirect_uri=f"https://x.example/{evil}")),  # 50011 page
        signin.authorize(f"/{evil}/oauth2/v2.0/authorize", query(client_id)),  # 900023 page
        signin.authorize(V2, query(client_id, response_mode="form_post", state=evil),
                         form={"login": WORK, "consent": "accept"}),  # form_post hidden state
        signin.authorize("/organizations/oauth2/v2.0/authorize", query(client_id), form={"login": f"{evil}@x.org"}),
    ]
    for r in pages:
        if r.status_code == 200:
            assert "<script>" not in r.text, r.text
            assert "&lt;script&gt;" in r.text, r.text
    assert "<script>" not in pages[2].headers.get("location", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0].text and 'x&quot;&lt;script' in pages[0].text
