"""One token acquisition per command, whatever the sign-in method: counted where tokens are made.

Each credential kind signs the real CLI in against the emulator; the emulator's request log shows every
token the signed-in identity was granted (the secret check's token for the new app is another identity
and is not counted). For `azure-cli` the count is the number of `az` processes: a stub `az` first on
PATH records each start and hands over to the real Azure CLI, which is signed in to the emulator.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.emulator.test_azure_cli import find_az
from tests.tool.conftest import Cli
from tests.tool.test_provision import URL

# Every command that signs in, in the order an admin meets them: each must sign in exactly once.
COMMANDS = [
    ("provision", "--url", URL),
    ("rotate-secret",),
    ("status", "--verify-secret"),
    ("deprovision", "--yes"),
]


def granted_tokens(emulator: Any, client_id: str) -> int:
    return sum(1 for e in emulator.request_log if e.kind == "token" and e.status == 200 and e.client_id == client_id)


def run_each_command(cli: Cli, emulator: Any, env_file: Path, env: dict[str, str], count: Any) -> None:
    env_file.parent.mkdir(exist_ok=True)
    for argv in COMMANDS:
        before = count()
        r = cli(*argv, "--env-file", str(env_file), env=env, timeout=180)
        assert r.returncode == 0, r
        assert count() - before == 1, f"{argv[0]}: {count() - before} token acquisitions\n{r}"


def test_environment_secret(cli: Cli, emulator: Any, env_file: Path) -> None:
    admin = emulator.info["admin_client_id"]
    run_each_command(cli, emulator, env_file, {}, lambda: granted_tokens(emulator, admin))


def test_environment_certificate(cli: Cli, emulator: Any, env_file: Path, tmp_path: Path) -> None:
    from tests.emulator.test_credentials import _rsa_certificate_pem

    cert_pem, key_pem = _rsa_certificate_pem()
    client_id, _ = emulator.directory.add_app_identity("ci-certificate", certificate_pem=cert_pem)
    path = tmp_path / "ci.pem"
    path.write_bytes(key_pem + cert_pem)
    env = {"AZURE_CLIENT_ID": client_id, "AZURE_CLIENT_SECRET": "", "AZURE_CLIENT_CERTIFICATE_PATH": str(path)}
    run_each_command(cli, emulator, env_file, env, lambda: granted_tokens(emulator, client_id))
    assert any(e.client_id == client_id and e.status == 200 for e in emulator.request_log), "signed in by certificate"


def test_workload_identity(cli: Cli, emulator: Any, env_file: Path, tmp_path: Path) -> None:
    from cypht_azure.emulator.models import SYSTEM

    client_id, _ = emulator.directory.add_app_identity("ci-workload")
    object_id = emulator.directory.get_application(app_id=client_id)["id"]
    issuer, subject = "https://token.actions.githubusercontent.com", "repo:cypht-org/cypht:ref:refs/heads/master"
    emulator.directory.fic_create(SYSTEM, ("id", object_id), {
        "name": "github", "issuer": issuer, "subject": subject, "audiences": ["api://AzureADTokenExchange"]})

    def enc(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    now = int(time.time())
    token_file = tmp_path / "federated-token"
    token_file.write_text(f"{enc({'alg': 'RS256', 'typ': 'JWT'})}."
                          f"{enc({'iss': issuer, 'sub': subject, 'aud': 'api://AzureADTokenExchange', 'iat': now, 'exp': now + 3600})}"
                          ".c2lnbmF0dXJl")
    env = {"CYPHT_AZURE_AUTH": "workload-identity", "AZURE_CLIENT_ID": client_id, "AZURE_CLIENT_SECRET": "",
           "AZURE_FEDERATED_TOKEN_FILE": str(token_file)}
    run_each_command(cli, emulator, env_file, env, lambda: granted_tokens(emulator, client_id))


def test_device_code(cli: Cli, emulator: Any, env_file: Path) -> None:
    public_client = emulator.info["device_code_client_id"]
    env = {"CYPHT_AZURE_AUTH": "device-code", "AZURE_CLIENT_ID": "", "AZURE_CLIENT_SECRET": "",
           "CYPHT_AZURE_DEVICE_CODE_CLIENT_ID": public_client}
    run_each_command(cli, emulator, env_file, env, lambda: granted_tokens(emulator, public_client))
    assert sum(1 for e in emulator.request_log if e.kind == "devicecode") == len(COMMANDS)


@pytest.fixture
def counting_az(emulator: Any, tmp_path: Path) -> tuple[dict[str, str], Path]:
    """The environment for a CLI run whose `az` is a spawn-counting stub in front of the real Azure CLI."""
    from cypht_azure.emulator.azure_cli import az_environment

    real = find_az()
    az_env, setup = az_environment(emulator, tmp_path / "azure-config", real)
    for argv in setup:
        proc = subprocess.run(argv, env=az_env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{argv[1:3]}: {proc.stderr[-2000:]}"
    stub_dir, spawns = tmp_path / "stub-bin", tmp_path / "az-spawns"
    stub_dir.mkdir()
    stub = stub_dir / "az"
    stub.write_text(f'#!/bin/sh\necho "$*" >> "{spawns}"\nexec "{real}" "$@"\n')
    stub.chmod(0o755)
    spawns.write_text("")
    env = {k: v for k, v in az_env.items() if k.startswith("AZURE_") or k == "REQUESTS_CA_BUNDLE"}
    env.pop("AZURE_CLIENT_SECRET")  # the Azure CLI's sign-in is what is tested, not the environment's
    env.update({"CYPHT_AZURE_AUTH": "azure-cli", "AZURE_CLIENT_ID": "", "AZURE_TENANT_ID": "",
                "PATH": f"{stub_dir}{os.pathsep}{os.environ['PATH']}"})
    return env, spawns


def test_azure_cli_starts_az_once_per_command(cli: Cli, emulator: Any, env_file: Path,
                                             counting_az: tuple[dict[str, str], Path]) -> None:
    env, spawns = counting_az

    def az_starts() -> int:
        return len(spawns.read_text().splitlines())

    run_each_command(cli, emulator, env_file, env, az_starts)
    assert all(line.startswith("account get-access-token") for line in spawns.read_text().splitlines())


# That every method goes through the same cache is checked where the credential is built, and the
# cache's rules without a server.

@pytest.mark.parametrize("method", ["azure-cli", "environment", "workload-identity", "managed-identity",
                                    "device-code", "browser", "auto"])
def test_every_sign_in_method_is_cached(method: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cypht_azure import auth

    for name, value in {"AZURE_CLIENT_ID": "11111111-1111-1111-1111-111111111111", "AZURE_TENANT_ID": "contoso",
                        "AZURE_CLIENT_SECRET": "not-a-secret",
                        "AZURE_FEDERATED_TOKEN_FILE": str(tmp_path / "token")}.items():
        monkeypatch.setenv(name, value)
    endpoints = auth.resolve_endpoints("public", authority_host=None, graph_url=None, ca_file=None)
    credential = auth.build_credential(auth.SignInSettings(method, None, endpoints, interactive=False))
    assert isinstance(credential, auth.OneTokenPerRun)


class _Issuer:
    def __init__(self, lifetime: float) -> None:
        self.lifetime, self.calls = lifetime, 0

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        self.calls += 1
        time.sleep(0.05)  # a slow acquisition, so concurrent callers overlap
        return AccessToken(f"token-{self.calls}", int(time.time() + self.lifetime))


def test_cache_keeps_a_token_per_scope_until_shortly_before_expiry() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from cypht_azure.auth import REFRESH_MARGIN, OneTokenPerRun

    issuer = _Issuer(3600)
    cached = OneTokenPerRun(issuer)
    with ThreadPoolExecutor(4) as pool:
        tokens = set(pool.map(lambda _: cached.get_token("graph/.default").token, range(8)))
    assert tokens == {"token-1"} and issuer.calls == 1  # concurrent callers wait for the one acquisition
    assert cached.get_token("other/.default").token == "token-2"  # per scope
    assert cached.get_token("graph/.default", claims='{"access_token":{}}').token == "token-3"  # a challenge: fresh
    assert cached.get_token("graph/.default").token == "token-1"

    brief = _Issuer(2)  # shorter than the margin: kept for half its life, then renewed
    cached = OneTokenPerRun(brief, margin=REFRESH_MARGIN)
    assert cached.get_token("s").token == cached.get_token("s").token == "token-1"
    time.sleep(1.1)
    assert cached.get_token("s").token == "token-2" and cached.acquisitions == 2


BROWSER_FETCH = """import html.parser, os, ssl, sys, urllib.parse, urllib.request


class Form(html.parser.HTMLParser):
    action, fields = "", {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.action = attrs.get("action") or ""
        elif tag == "input" and attrs.get("type") == "hidden":
            self.fields[attrs["name"]] = attrs.get("value") or ""


context = ssl.create_default_context(cafile=os.environ["CYPHT_AZURE_CA_FILE"])
page = Form()
page.feed(urllib.request.urlopen(sys.argv[1], context=context, timeout=60).read().decode())
# response_mode=form_post: the page's form carries the code to the credential's listener on localhost
urllib.request.urlopen(page.action, data=urllib.parse.urlencode(page.fields).encode(), timeout=60).read()
"""


@pytest.fixture
def auto_sign_in_emulator() -> Any:
    from cypht_azure.emulator import Emulator

    with Emulator(sign_in="auto") as emu:  # authorize answers at once, as after a person signed in
        yield emu


def test_browser(auto_sign_in_emulator: Any, home: Path, env_file: Path, tmp_path: Path) -> None:
    """A `BROWSER` that opens the sign-in page in the background: the emulator signs the admin in at once."""
    import sys

    from tests.tool.conftest import admin_env

    emulator = auto_sign_in_emulator
    fetch, opened = tmp_path / "fetch.py", tmp_path / "opened"
    fetch.write_text(BROWSER_FETCH)
    browser = tmp_path / "browser"
    # In the background: the credential answers the redirect only after the browser command returned.
    browser.write_text(f'#!/bin/sh\necho x >> "{opened}"\n"{sys.executable}" "{fetch}" "$1" >/dev/null 2>&1 &\n')
    browser.chmod(0o755)
    public_client = emulator.info["device_code_client_id"]
    env = admin_env(emulator, home)
    env.update({"CYPHT_AZURE_AUTH": "browser", "AZURE_CLIENT_ID": "", "AZURE_CLIENT_SECRET": "",
                "CYPHT_AZURE_DEVICE_CODE_CLIENT_ID": public_client, "BROWSER": str(browser), "DISPLAY": ""})
    env_file.parent.mkdir()
    for argv in COMMANDS:
        before = granted_tokens(emulator, public_client)
        proc = subprocess.run([sys.executable, "-m", "cypht_azure", *argv, "--env-file", str(env_file)], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert granted_tokens(emulator, public_client) - before == 1, argv[0]
    assert len(opened.read_text().splitlines()) == len(COMMANDS)  # one browser sign-in per command
    assert {e.grant_type for e in emulator.request_log if e.kind == "token" and e.client_id == public_client} == {
        "authorization_code"}


def test_managed_identity(cli: Cli, emulator: Any, env_file: Path) -> None:
    """App Service's managed identity: IDENTITY_ENDPOINT answered by the emulator for a user-assigned identity."""
    client_id, _ = emulator.directory.add_app_identity("app-service-identity")
    env = {"CYPHT_AZURE_AUTH": "managed-identity", "AZURE_CLIENT_ID": client_id, "AZURE_CLIENT_SECRET": "",
           "IDENTITY_ENDPOINT": emulator.info["authority_host"] + "/msi/token", "IDENTITY_HEADER": "from-the-platform"}

    def identity_tokens() -> int:
        return sum(1 for e in emulator.request_log if e.path.startswith("/msi/token") and e.status == 200)

    run_each_command(cli, emulator, env_file, env, identity_tokens)
    assert granted_tokens(emulator, client_id) == 0  # no client credentials: the platform's endpoint only


def test_the_secret_check_reads_no_second_discovery(cli: Cli, emulator: Any, env_file: Path) -> None:
    """The check of a new secret is a new MSAL application; it shares the sign-in's transport, so the
    tenant's OpenID configuration is read once per run, not once per credential."""
    env_file.parent.mkdir(exist_ok=True)
    # rotate-secret reads none: the document provision read is kept for the host (tests/tool/test_discovery_cache.py)
    for argv, discovery in ((("provision", "--url", URL), ["openid"]), (("rotate-secret",), [])):
        emulator.clear_log()
        r = cli(*argv, "--env-file", str(env_file), timeout=180)
        assert r.returncode == 0, r
        kinds = [e.kind for e in emulator.request_log if e.kind in ("openid", "token")]
        assert kinds == [*discovery, "token", "token"], f"{argv[0]}: {kinds}"  # sign-in, then the check's token


def test_a_tenant_named_by_domain_is_discovered_once(cli: Cli, emulator: Any, env_file: Path) -> None:
    """Signed in with the tenant's domain name: the check of the new secret uses the same authority URL
    (not the tenant GUID from the token), so one OpenID configuration is read, not two."""
    env_file.parent.mkdir(exist_ok=True)
    emulator.clear_log()
    r = cli("provision", "--url", URL, "--env-file", str(env_file), env={"AZURE_TENANT_ID":
                                                                         emulator.info["tenant_domain"]}, timeout=180)
    assert r.returncode == 0, r
    kinds = [e.kind for e in emulator.request_log if e.kind in ("openid", "token")]
    assert kinds == ["openid", "token", "token"], kinds
