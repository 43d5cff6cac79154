"""Cypht's own requests (cypht.md §3.1) replayed by PHP's curl against an app the real `provision` made.

`cypht_replay.php` loads the `.env` that provision wrote with Cypht's loader and builds each request
as Cypht does; the endpoint keys point at the emulator through real environment variables (which win
over `.env`, as with Docker's `environment:`), the way an admin rehearses Cypht's sign-in offline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from cypht_azure.emulator import Emulator
from tests.tool.conftest import admin_env
from tests.tool.php import require_php

from .conftest import ca_context

PHP = Path(__file__).with_name("cypht_replay.php")
URL = "https://mail.example.org"
CLIENT_URI = "https://mail.example.org/"
PERSONAL = "bob@outlook.com"
WORK = "admin@cyphtemulator.onmicrosoft.com"
NOT_FOR_CONSUMERS = "The client does not exist or is not enabled for consumers."


def require_php_curl() -> None:
    require_php()
    modules = subprocess.run(["php", "-m"], capture_output=True, text=True, timeout=30).stdout.split()
    if "curl" not in modules:
        message = "php-curl is needed to replay Cypht's requests with PHP's curl"
        if os.environ.get("CYPHT_AZURE_REQUIRE_PHP") == "1":
            pytest.fail(message + " (CYPHT_AZURE_REQUIRE_PHP=1)")
        pytest.skip(message)


def provision(emulator: Emulator, tmp_path: Path, *extra: str) -> Path:
    """`cypht-azure provision` as an admin runs it; the .env it writes."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env_file = tmp_path / "cypht" / ".env"
    env_file.parent.mkdir(exist_ok=True)
    r = subprocess.run([sys.executable, "-m", "cypht_azure", "provision", "--url", URL, "--env-file", str(env_file),
                        "--json", *extra], env=admin_env(emulator, home), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return env_file


def endpoints(emulator: Emulator) -> dict[str, str]:
    base = emulator.base_url
    return {
        "OUTLOOK_AUTH_URI": f"{base}/oauth20_authorize.srf",
        "OUTLOOK_TOKEN_URI": f"{base}/oauth20_token.srf",
        "OUTLOOK_REFRESH_URI": f"{base}/oauth20_token.srf",
        "OFFICE365_AUTH_URI": f"{base}/common/oauth2/v2.0/authorize",
        "OFFICE365_TOKEN_URI": f"{base}/common/oauth2/v2.0/token",
        "OFFICE365_REFRESH_URI": f"{base}/common/oauth2/v2.0/token",
    }


def cypht(emulator: Emulator, env_file: Path, step: str, provider: str, arg: str, *, scope: str | None = None,
          **environment: str) -> dict[str, Any]:
    require_php_curl()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OUTLOOK_", "OFFICE365_"))}
    env.update(endpoints(emulator))
    env.update(environment)
    cmd = ["php", "-d", f"curl.cainfo={emulator.ca_file}", str(PHP), step, str(env_file), provider, arg]
    proc = subprocess.run(cmd + ([scope] if scope else []), env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    result: dict[str, Any] = json.loads(proc.stdout)
    if result["body"].startswith("{"):
        result["json"] = json.loads(result["body"])
    return result


def callback(result: dict[str, Any], client_uri: str = CLIENT_URI) -> dict[str, str]:
    """What Cypht's home page receives: the query of the redirect to CLIENT_URI."""
    assert result["status"] == 302, result
    location = result["location"]
    assert location.startswith(client_uri + "?"), location
    return dict(parse_qsl(urlsplit(location).query, keep_blank_values=True))


@pytest.fixture
def env_file(emulator: Emulator, tmp_path: Path) -> Path:
    require_php_curl()
    return provision(emulator, tmp_path)


@pytest.mark.emulator(sign_in="auto")
def test_outlook_via_live_succeeds_and_the_code_works_once(emulator: Emulator, env_file: Path) -> None:
    authorize = cypht(emulator, env_file, "authorize", "outlook", PERSONAL)
    assert authorize["url"].startswith(endpoints(emulator)["OUTLOOK_AUTH_URI"] + "?response_type=code&scope=wl.imap"
                                       "&state=nux_authorization&approval_prompt=force&access_type=offline&client_id=")
    assert f"&redirect_uri={CLIENT_URI}&login_hint={PERSONAL}" in authorize["url"]  # raw, as Cypht sends it
    params = callback(authorize)
    assert params["state"] == "nux_authorization" and params["code"].startswith("M.C5")
    token = cypht(emulator, env_file, "token", "outlook", params["code"])
    assert token["status"] == 200, token
    assert token["json"]["token_type"] == "bearer" and token["json"]["scope"] == "wl.imap"
    assert token["json"]["access_token"].startswith("EwB")
    assert "refresh_token" not in token["json"]  # Cypht asks for no offline scope (cypht.md §3.2)
    again = cypht(emulator, env_file, "token", "outlook", params["code"])
    assert again["status"] == 400 and again["json"]["error"] == "invalid_grant"


def test_outlook_via_live_with_the_sign_in_page(emulator: Emulator, env_file: Path) -> None:
    authorize = cypht(emulator, env_file, "authorize", "outlook", PERSONAL)
    assert authorize["status"] == 200 and f'aria-label="Sign in as {PERSONAL}"' in authorize["body"]
    # The user clicks their account, then Accept: the browser posts the page's form.
    r = httpx.post(authorize["url"], data={"login": PERSONAL, "consent": "accept"}, verify=ca_context(emulator))
    params = callback({"status": r.status_code, "location": r.headers.get("location")})
    token = cypht(emulator, env_file, "token", "outlook", params["code"])
    assert token["status"] == 200 and token["json"]["scope"] == "wl.imap"


@pytest.mark.emulator(sign_in="auto")
def test_office365_via_v2_common_with_wl_imap_is_sent_back_with_the_error(emulator: Emulator,
                                                                         env_file: Path) -> None:
    params = callback(cypht(emulator, env_file, "authorize", "office365", WORK))
    assert params["error"] == "invalid_client" and params["state"] == "nux_authorization"
    assert params["error_description"].startswith(
        "AADSTS650053: The application 'Cypht webmail (mail.example.org)' asked for scope 'wl.imap' that doesn't "
        "exist on the resource '00000003-0000-0000-c000-000000000000'. Contact the app vendor.")
    assert "code" not in params


@pytest.mark.emulator(sign_in="auto")
def test_wrong_secret_is_refused_at_redemption(emulator: Emulator, env_file: Path) -> None:
    code = callback(cypht(emulator, env_file, "authorize", "outlook", PERSONAL))["code"]
    token = cypht(emulator, env_file, "token", "outlook", code, OUTLOOK_CLIENT_SECRET="not-the-secret")
    assert token["status"] == 401
    assert token["json"]["error"] == "invalid_client"
    assert token["json"]["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")
    # the secret's ID instead of its value (cypht#1500) is the same mistake
    key_id = next(line.split("=", 1)[1] for line in env_file.read_text().splitlines()
                  if line.startswith("OUTLOOK_CLIENT_SECRET_ID="))
    token = cypht(emulator, env_file, "token", "outlook", code, OUTLOOK_CLIENT_SECRET=key_id.strip("'\""))
    assert token["status"] == 401 and "7000215" in token["json"]["error_description"]


@pytest.mark.emulator(sign_in="auto")
def test_an_unregistered_client_uri_is_never_redirected_to(emulator: Emulator, env_file: Path) -> None:
    stranger = "https://attacker.example/"
    live = cypht(emulator, env_file, "authorize", "outlook", PERSONAL, OUTLOOK_CLIENT_URI=stranger)
    assert live["status"] == 302 and live["location"].startswith(f"{emulator.base_url}/err.srf?lc=1033#")
    assert "attacker.example" not in live["location"].split("#")[0]
    fragment = dict(parse_qsl(urlsplit(live["location"]).fragment))
    assert fragment["error"] == "invalid_request" and fragment["state"] == "nux_authorization"
    v2 = cypht(emulator, env_file, "authorize", "office365", WORK, OFFICE365_CLIENT_URI=stranger)
    assert v2["status"] == 200 and v2["location"] is None
    assert "AADSTS50011: The redirect URI &#x27;https://attacker.example/&#x27; specified" in v2["body"]
    # Cypht's own default, when CLIENT_URI is left empty, is not registered either
    empty = cypht(emulator, env_file, "authorize", "outlook", PERSONAL, OUTLOOK_CLIENT_URI="")
    assert empty["location"].startswith(f"{emulator.base_url}/err.srf")


@pytest.mark.emulator(sign_in="auto")
def test_a_single_tenant_app_is_refused_at_live(emulator: Emulator, tmp_path: Path) -> None:
    require_php_curl()
    env_file = provision(emulator, tmp_path, "--audience", "single-tenant")
    live = cypht(emulator, env_file, "authorize", "outlook", PERSONAL)
    assert live["status"] == 302 and live["location"].startswith(f"{emulator.base_url}/err.srf?lc=1033#")
    fragment = dict(parse_qsl(urlsplit(live["location"]).fragment))
    assert fragment["error"] == "unauthorized_client"
    assert fragment["error_description"].startswith(NOT_FOR_CONSUMERS)


@pytest.mark.emulator(sign_in="auto")
def test_refresh_as_cypht_sends_it_checks_the_secret(emulator: Emulator, env_file: Path) -> None:
    # Cypht's scope brings no refresh token; ask for wl.offline_access to have one to refresh with.
    code = callback(cypht(emulator, env_file, "authorize", "outlook", PERSONAL, scope="wl.imap wl.offline_access"))
    refresh = cypht(emulator, env_file, "token", "outlook", code["code"])["json"]["refresh_token"]
    wrong = cypht(emulator, env_file, "refresh", "outlook", refresh, OUTLOOK_CLIENT_SECRET="not-the-secret")
    assert wrong["status"] == 401 and wrong["json"]["error"] == "invalid_client"
    assert wrong["json"]["error_description"].startswith("AADSTS7000215")
    right = cypht(emulator, env_file, "refresh", "outlook", refresh)
    assert right["status"] == 200 and right["json"]["access_token"].startswith("EwB")


@pytest.mark.emulator(sign_in="auto")
def test_sign_ins_across_a_secret_rotation(emulator: Emulator, env_file: Path, tmp_path: Path) -> None:
    """A code issued before rotate-secret is redeemed with the .env as rotate left it; one issued after works."""
    before = callback(cypht(emulator, env_file, "authorize", "outlook", PERSONAL))["code"]
    r = subprocess.run([sys.executable, "-m", "cypht_azure", "rotate-secret", "--env-file", str(env_file)],
                       env=admin_env(emulator, tmp_path / "home"), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert cypht(emulator, env_file, "token", "outlook", before)["status"] == 200
    after = callback(cypht(emulator, env_file, "authorize", "outlook", PERSONAL))["code"]
    assert cypht(emulator, env_file, "token", "outlook", after)["status"] == 200

