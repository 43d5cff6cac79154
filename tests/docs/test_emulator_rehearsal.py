"""docs/emulator.md, "Rehearse Cypht's Outlook sign-in" (issue 19, item 17): the commands a Cypht admin
follows run here as documented — PHP trusting the emulator through curl.cainfo and openssl.cafile,
certutil adding the CA to Chromium's NSS database, Firefox's policy, and PHP serving only site/."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from cypht_azure.emulator import Emulator

DOC = Path(__file__).resolve().parents[2] / "docs" / "emulator.md"
BLOCK = re.compile(r"^ *```(\w+)\n(.*?)^ *```", re.M | re.S)


def section() -> str:
    text = DOC.read_text(encoding="utf-8")
    return text[text.index("## Rehearse Cypht's Outlook sign-in"):]


def block(language: str, first_line: str = "") -> str:
    """The documented block of ``language`` whose first line starts with ``first_line``, unindented."""
    for lang, body in BLOCK.findall(section()):
        lines = body.splitlines()
        indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
        code = "\n".join(line[indent:] for line in lines) + "\n"
        if lang == language and code.startswith(first_line):
            return code
    raise AssertionError(f"no ```{language} block starting {first_line!r} in the rehearsal section")


def require(program: str) -> str:
    found = shutil.which(program)
    if not found:
        pytest.skip(f"{program} is not installed")
    return found


def test_php_trusts_the_emulator_through_curl_and_streams_with_both_settings(tmp_path: Path) -> None:
    require("php")
    script = block("sh", "# PHP trusts the emulator's CA")
    # the php.ini lines are settings PHP takes, read from a file of its conf.d folder (the scan dirs
    # PHP already reads, plus this one)
    ini = block("ini").replace("/etc/cypht/emulator-ca.pem", str(tmp_path / "ca.pem"))
    assert re.findall(r"^(\w+\.\w+) =", ini, re.M) == ["curl.cainfo", "openssl.cafile"]
    (tmp_path / "cypht-emulator.ini").write_text(ini)
    r = subprocess.run(["php", "-r", 'echo ini_get("curl.cainfo"), "|", ini_get("openssl.cafile");'],
                       env={**os.environ, "PHP_INI_SCAN_DIR": f":{tmp_path}"}, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and r.stdout == f"{tmp_path / 'ca.pem'}|{tmp_path / 'ca.pem'}", r
    if subprocess.run(["php", "-r", 'exit(function_exists("curl_init") ? 0 : 1);']).returncode:
        pytest.skip("PHP's curl extension is not installed")
    with Emulator() as emu:
        env = {**os.environ, "CA": emu.ca_file, "EMULATOR": emu.base_url}
        env.pop("SSL_CERT_FILE", None)
        trusted = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=60)
        assert trusted.stdout.split("\n")[:2] == ["curl: trusted", "streams: trusted"], trusted
        without = subprocess.run(["sh", "-c", re.sub(r'-d \w+\.\w+="\$CA" ', "", script)], env=env,
                                 capture_output=True, text=True, timeout=60)
        assert without.stdout.split("\n")[:2] == ["curl: not trusted", "streams: not trusted"], without


def test_certutil_puts_the_ca_into_chromiums_nss_database(tmp_path: Path) -> None:
    require("certutil")
    script = block("sh", "# Chromium: trust the emulator's CA")
    home = tmp_path / "home"
    home.mkdir()
    with Emulator() as emu:
        (tmp_path / "entra").mkdir()
        shutil.copy(emu.ca_file, tmp_path / "entra" / "ca.pem")
    env = {**os.environ, "HOME": str(home)}
    r = subprocess.run(["sh", "-ec", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r
    listed = subprocess.run(["certutil", "-d", f"sql:{home}/.pki/nssdb", "-L"], capture_output=True, text=True,
                            timeout=60)
    assert re.search(r"^cypht-azure-emulator\s+C,,\s*$", listed.stdout, re.M), listed.stdout
    again = subprocess.run(["sh", "-ec", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again  # a second run (the database exists) works as well


def test_the_firefox_policy_installs_a_certificate_file() -> None:
    policy = json.loads(block("json"))
    installs = policy["policies"]["Certificates"]["Install"]
    assert isinstance(installs, list) and [p for p in installs if p.endswith("/ca.pem")] == installs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serving_site_never_serves_the_env_file(tmp_path: Path) -> None:
    require("php")
    command = block("sh", "# serve Cypht for the rehearsal").splitlines()[-1]
    assert command == "php -S localhost:8080 -t site"
    cypht = tmp_path / "cypht"
    (cypht / "site").mkdir(parents=True)
    (cypht / ".env").write_text("OUTLOOK_CLIENT_SECRET=not-for-the-web\nENABLE_DEBUG=false\n")
    (cypht / "site" / "index.php").write_text("<?php echo 'cypht home';\n")
    port = _free_port()
    proc = subprocess.Popen(command.replace("localhost:8080", f"127.0.0.1:{port}").split(), cwd=cypht,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                home = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert home.text == "cypht home"
        for path in ("/.env", "/../.env", "/%2e%2e/.env"):
            r = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)
            assert "not-for-the-web" not in r.text
    finally:
        proc.terminate()
        proc.wait(timeout=10)
