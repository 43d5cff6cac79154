"""`provision --emulator-endpoints`: a `.env` with which a local Cypht signs in against the emulator,
offline; and no other run ever writes an emulator's URL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from cypht_azure.emulator import Emulator
from tests.emulator.test_cypht_replay import PHP, require_php_curl
from tests.tool.conftest import Cli, clean_environ
from tests.tool.test_provision import URL, provision, read_env

ENDPOINT_KEYS = [f"{p}_{k}" for p in ("OUTLOOK", "OFFICE365") for k in ("AUTH_URI", "TOKEN_URI", "REFRESH_URI")]


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """The emulator as a rehearsal runs it for PHP's curl, which cannot click: sign-in answered at once."""
    with Emulator(sign_in="auto") as emu:
        yield emu


def endpoint_values(env_file: Path) -> dict[str, str]:
    values = read_env(env_file)
    return {k: values[k] for k in ENDPOINT_KEYS}


def live_at(base: str) -> dict[str, str]:
    return {f"{p}_{k}": f"{base}/{path}" for p in ("OUTLOOK", "OFFICE365")
            for k, path in (("AUTH_URI", "oauth20_authorize.srf"), ("TOKEN_URI", "oauth20_token.srf"),
                            ("REFRESH_URI", "oauth20_token.srf"))}


def php(emulator: Emulator, env_file: Path, *args: str) -> dict[str, Any]:
    """Cypht's request, built from the .env alone (no endpoint overrides in the environment)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OUTLOOK_", "OFFICE365_"))}
    proc = subprocess.run(["php", "-d", f"curl.cainfo={emulator.ca_file}", str(PHP), args[0], str(env_file),
                           *args[1:]], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_normal_runs_never_write_emulator_urls(cli: Cli, emulator: Emulator, env_file: Path) -> None:
    env_file.parent.mkdir()
    assert provision(cli, env_file).returncode == 0
    assert endpoint_values(env_file) == live_at("https://login.live.com")
    for extra in ([], ["--dry-run"]):
        assert provision(cli, env_file, *extra).returncode == 0
        assert endpoint_values(env_file) == live_at("https://login.live.com")
    rotated = cli("rotate-secret", "--env-file", str(env_file), "--json")
    assert rotated.returncode == 0, rotated
    assert endpoint_values(env_file) == live_at("https://login.live.com")
    cypht_values = [v for k, v in read_env(env_file).items() if k.startswith(("OUTLOOK_", "OFFICE365_"))]
    assert not [v for v in cypht_values if emulator.base_url in v]  # (cypht-azure's own recorded options aside)


def test_emulator_endpoints_let_cyphts_own_requests_sign_in(cli: Cli, emulator: Emulator, env_file: Path) -> None:
    require_php_curl()
    env_file.parent.mkdir()
    dry = provision(cli, env_file, "--emulator-endpoints", "--dry-run")
    assert dry.returncode == 0 and not env_file.exists(), dry
    r = provision(cli, env_file, "--emulator-endpoints")
    assert r.returncode == 0, r
    base = emulator.info["authority_host"]
    assert endpoint_values(env_file) == live_at(base)
    # Cypht's three requests, from the .env alone, by PHP's curl trusting the emulator's CA (curl.cainfo)
    authorize = php(emulator, env_file, "authorize", "outlook", "carol@outlook.com")
    assert authorize["status"] == 302, authorize
    location = urlsplit(authorize["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{URL}/"
    query = parse_qs(location.query)
    assert query["state"] == ["nux_authorization"]
    token = php(emulator, env_file, "token", "outlook", query["code"][0])
    assert token["status"] == 200 and json.loads(token["body"])["access_token"], token
    # doctor agrees, replaying the same at the URLs .env names
    doctor = cli("doctor", "--env-file", str(env_file), "--json")
    assert doctor.returncode == 0, doctor
    assert all(p["steps"][1]["ok"] for p in doctor.json["providers"])


def test_emulator_url_names_the_emulator_as_cypht_reaches_it(cli: Cli, emulator: Emulator, env_file: Path) -> None:
    env_file.parent.mkdir()
    r = provision(cli, env_file, "--emulator-endpoints", "--emulator-url", "https://cypht-emulator:8443")
    assert r.returncode == 0, r
    assert endpoint_values(env_file) == live_at("https://cypht-emulator:8443")


@pytest.mark.parametrize(("extra", "fragment"), [
    (["--emulator-url", "https://cypht-emulator:8443"], "only with --emulator-endpoints"),
    (["--emulator-endpoints", "--emulator-url", "http://cypht-emulator:8443"], "https://"),
    (["--emulator-endpoints", "--emulator-url", "https://cypht-emulator:8443/x"], "without a path"),
])
def test_bad_emulator_options_change_nothing(cli: Cli, emulator: Emulator, env_file: Path, extra: list[str],
                                            fragment: str) -> None:
    env_file.parent.mkdir()
    emulator.clear_log()
    r = provision(cli, env_file, *extra)
    assert r.returncode == 2, r
    assert fragment in r.json["error"]["message"]
    assert not env_file.exists() and emulator.request_log == []


def test_sandbox_needs_an_emulator_that_keeps_running(cli: Cli, home: Path, tmp_path: Path) -> None:
    """--sandbox's own emulator dies with the command: refused. With `cypht-azure emulator` serving the
    sandbox's folder, --sandbox uses it and writes its URL; doctor --sandbox then signs in there."""
    env_file = tmp_path / "cypht.env"
    sandbox = {k: v for k, v in clean_environ(home).items()}
    alone = cli("provision", "--sandbox", "--url", URL, "--env-file", str(env_file), "--emulator-endpoints",
                "--json", env=sandbox)
    assert alone.returncode == 2, alone
    assert "cypht-azure emulator --state-dir" in alone.json["error"]["hint"]
    assert not env_file.exists()

    state = home / ".state" / "cypht-azure" / "sandbox"
    server = subprocess.Popen([sys.executable, "-m", "cypht_azure", "emulator", "--state-dir", str(state),
                               "--sign-in", "auto"], env=sandbox, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        info_file = state / "emulator.json"
        deadline = time.monotonic() + 30
        while not info_file.exists():
            assert server.poll() is None and time.monotonic() < deadline, "the emulator did not start"
            time.sleep(0.1)
        base = json.loads(info_file.read_text())["authority_host"]
        r = cli("provision", "--sandbox", "--url", URL, "--env-file", str(env_file), "--emulator-endpoints",
                "--json", env=sandbox)
        assert r.returncode == 0, r
        assert endpoint_values(env_file) == live_at(base)
        doctor = cli("doctor", "--sandbox", "--env-file", str(env_file), "--json", env=sandbox)
        assert doctor.returncode == 0, doctor
        assert doctor.json["rehearsed"] and all(p["works"] for p in doctor.json["providers"])
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
