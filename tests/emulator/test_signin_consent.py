"""Consent is asked once: a later sign-in for scopes already granted goes straight back with a code,
`prompt=consent` asks again, a new scope asks again, and a work account's consent goes with the app's
service principal (signin.md §2.1 `prompt`, §2.4 step 5)."""

from __future__ import annotations

import httpx

from cypht_azure.emulator import Emulator
from cypht_azure.emulator.models import SYSTEM

from .conftest import SignIn, redirected, web_app
from .test_signin_authorize import PERSONAL, RU, V2, WORK, query
from .test_signin_live import AUTHORIZE as LIVE
from .test_signin_live import live_query

IMAP = "openid offline_access https://outlook.office.com/IMAP.AccessAsUser.All"


def asks_consent(r: httpx.Response) -> bool:
    if r.status_code == 200 and "Permissions requested" in r.text:
        return True
    redirected(r, RU + "?")  # otherwise: straight back to Cypht with a code
    return False


def consent(signin: SignIn, path: str, q: dict[str, str], login: str) -> None:
    assert "code" in redirected(signin.authorize(path, q, form={"login": login, "consent": "accept"}), RU + "?")


def test_work_account_is_asked_once_then_only_for_what_is_new(emulator: Emulator, signin: SignIn) -> None:
    client_id, _ = web_app(emulator)
    q = query(client_id, scope=IMAP)
    assert asks_consent(signin.authorize(V2, q, form={"login": WORK}))
    consent(signin, V2, q, WORK)
    again = signin.authorize(V2, q, form={"login": WORK})
    assert not asks_consent(again) and "code" in redirected(again, RU + "?")
    # The same scopes in another order and case, or fewer of them: granted already.
    assert not asks_consent(signin.authorize(V2, query(client_id, scope="https://outlook.office.com/imap.accessasuser.all openid"),
                                             form={"login": WORK}))
    # prompt=consent forces the dialog; a scope not granted yet asks again.
    assert asks_consent(signin.authorize(V2, query(client_id, scope=IMAP, prompt="consent"), form={"login": WORK}))
    more = query(client_id, scope=IMAP + " https://outlook.office.com/SMTP.Send")
    assert asks_consent(signin.authorize(V2, more, form={"login": WORK}))
    consent(signin, V2, more, WORK)
    assert not asks_consent(signin.authorize(V2, more, form={"login": WORK}))


def test_consent_is_per_user_and_per_app(emulator: Emulator, signin: SignIn) -> None:
    first, _ = web_app(emulator)
    second, _ = web_app(emulator, name="Another webmail")
    consent(signin, V2, query(first, scope=IMAP), WORK)
    assert asks_consent(signin.authorize(V2, query(second, scope=IMAP), form={"login": WORK}))
    assert asks_consent(signin.authorize(V2, query(first, scope=IMAP), form={"login": PERSONAL}))


def test_a_work_accounts_consent_goes_with_the_service_principal(emulator: Emulator, signin: SignIn) -> None:
    client_id, _ = web_app(emulator)
    q = query(client_id, scope=IMAP)
    consent(signin, V2, q, WORK)
    emulator.directory.sp_delete(SYSTEM, ("appId", client_id))  # what deprovision does
    assert asks_consent(signin.authorize(V2, q, form={"login": WORK}))
    consent(signin, V2, q, WORK)  # a new service principal, consented anew
    assert emulator.directory.get_service_principal(client_id) is not None
    assert not asks_consent(signin.authorize(V2, q, form={"login": WORK}))


def test_personal_account_at_login_live_com_is_asked_once(emulator: Emulator, signin: SignIn) -> None:
    client_id, _ = web_app(emulator)
    q = live_query(client_id)
    assert asks_consent(signin.authorize(LIVE, q, form={"login": PERSONAL}))
    consent(signin, LIVE, q, PERSONAL)
    assert not asks_consent(signin.authorize(LIVE, q, form={"login": PERSONAL}))


def test_declining_records_nothing(emulator: Emulator, signin: SignIn) -> None:
    client_id, _ = web_app(emulator)
    q = query(client_id, scope=IMAP)
    params = redirected(signin.authorize(V2, q, form={"login": WORK, "consent": "cancel"}), RU + "?")
    assert params["error"] == "access_denied"
    assert asks_consent(signin.authorize(V2, q, form={"login": WORK}))
