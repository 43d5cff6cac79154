"""The sign-in page in a real browser: Debian's chromium, headless, driven by selenium; controls found by
their accessible names. Everything else about the page is plain HTTP tests (test_signin_*.py)."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cypht_azure.emulator import Emulator

from .conftest import ca_context, web_app

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WORK = "admin@cyphtemulator.onmicrosoft.com"
PERSONAL = "carol@outlook.com"


class _Callback(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!DOCTYPE html><title>Cypht</title><p>back at the app</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def callback() -> Iterator[str]:
    """The app's redirect URI: a local page the browser can really load."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Callback)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/cypht/"
    server.shutdown()
    server.server_close()


def _spki_hash(cert_file: Path) -> str:
    """Chromium trusts exactly this server key (--ignore-certificate-errors-spki-list), nothing else."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture
def browser(emulator: Emulator) -> Iterator[Any]:
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        message = "Debian's chromium and chromium-driver are needed (.ci/run installs them)"
        if os.environ.get("CYPHT_AZURE_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="cypht-azure-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                 "--ignore-certificate-errors-spki-list="
                 + _spki_hash(Path(emulator.ca_file).with_name("server-cert.pem"))):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def named(driver: Any, name: str) -> Any:
    """The one button or field whose accessible name is ``name``."""
    from selenium.webdriver.common.by import By

    found = [e for e in driver.find_elements(By.CSS_SELECTOR, "button, input:not([type=hidden])")
             if e.accessible_name == name]
    assert len(found) == 1, (name, [e.accessible_name for e in driver.find_elements(By.CSS_SELECTOR, "button, input")])
    return found[0]


def shows(driver: Any, *texts: str) -> None:
    """Wait for the page the last click led to (a form submission may still be loading)."""
    deadline = time.monotonic() + 15
    while not all(t in driver.page_source for t in texts):
        assert time.monotonic() < deadline, (texts, driver.page_source[:2000])
        time.sleep(0.05)


def arrive(driver: Any, prefix: str) -> dict[str, str]:
    deadline = time.monotonic() + 15
    while not driver.current_url.startswith(prefix):
        assert time.monotonic() < deadline, driver.current_url
        time.sleep(0.05)
    return dict(parse_qsl(urlsplit(driver.current_url).query))


def test_a_person_signs_in_consents_and_the_app_redeems_the_code(emulator: Emulator, browser: Any,
                                                                 callback: str) -> None:
    client_id, secret = web_app(emulator, redirect_uris=(callback,))
    scope = "openid offline_access https://outlook.office.com/IMAP.AccessAsUser.All"
    query = {"client_id": client_id, "response_type": "code", "redirect_uri": callback, "scope": scope,
             "state": "s1", "login_hint": WORK}
    browser.get(f"{emulator.base_url}/common/oauth2/v2.0/authorize?{urlencode(query)}")
    assert browser.title == "Sign in to your account"
    named(browser, f"Sign in as {WORK}").click()
    shows(browser, "Permissions requested", "IMAP.AccessAsUser.All")
    named(browser, "Accept").click()
    params = arrive(browser, callback)
    assert params["state"] == "s1"
    r = httpx.post(f"{emulator.base_url}/common/oauth2/v2.0/token", verify=ca_context(emulator), data={
        "client_id": client_id, "client_secret": secret, "code": params["code"], "redirect_uri": callback,
        "grant_type": "authorization_code"})
    assert r.status_code == 200 and "refresh_token" in r.json()


def test_a_person_types_an_account_at_live_and_cancels(emulator: Emulator, browser: Any, callback: str) -> None:
    client_id, _ = web_app(emulator, redirect_uris=(callback,))
    query = {"client_id": client_id, "response_type": "code", "redirect_uri": callback, "scope": "wl.imap",
             "state": "nux_authorization"}
    browser.get(f"{emulator.base_url}/oauth20_authorize.srf?{urlencode(query)}")
    named(browser, "Email, phone, or Skype").send_keys(PERSONAL)
    named(browser, "Next").click()
    shows(browser, "Permissions requested", PERSONAL, "wl.imap")
    named(browser, "Cancel").click()
    params = arrive(browser, callback)
    assert params == {"error": "access_denied", "state": "nux_authorization",
                      "error_description": "The user has denied access to the scope requested by the client "
                                           "application."}
