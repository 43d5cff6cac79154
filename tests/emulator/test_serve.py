"""``python -m cypht_azure.emulator --state-dir DIR``: foreground server with emulator.json."""

from __future__ import annotations

import json
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest


def test_module_entry_point_serves_until_interrupted(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "cypht_azure.emulator", "--state-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    info_file = tmp_path / "emulator.json"
    try:
        deadline = time.monotonic() + 15
        while not info_file.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.05)
        info = json.loads(info_file.read_text())
        for key in ("authority_host", "graph_url", "ca_file", "tenant_id", "admin_client_id", "admin_client_secret"):
            assert info[key]
        assert info_file.stat().st_mode & 0o077 == 0  # holds a secret: owner-only
        ctx = ssl.create_default_context(cafile=info["ca_file"])
        token = httpx.post(f"{info['authority_host']}/{info['tenant_id']}/oauth2/v2.0/token", verify=ctx, data={
            "grant_type": "client_credentials", "client_id": info["admin_client_id"],
            "client_secret": info["admin_client_secret"], "scope": "https://graph.microsoft.com/.default"})
        assert token.status_code == 200
        apps = httpx.get(f"{info['graph_url']}/applications", verify=ctx,
                         headers={"Authorization": f"Bearer {token.json()['access_token']}"})
        assert apps.status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert f"AZURE_AUTHORITY_HOST={info['authority_host']}" in out
    assert f"REQUESTS_CA_BUNDLE={info['ca_file']}" in out and "SSL_CERT_FILE=" in out
    assert f"--authority-host {info['authority_host']} --graph-url {info['graph_url']}" in out
    assert "--tenant " + info["tenant_id"] in out and "--ca-file" in out
    assert info["admin_client_secret"] not in out + err
    assert not info_file.exists()


# ---------------------------------------------------------------- `cypht-azure emulator`: dead ends (issue 12 item 8)

def _start(state_dir: Path, *args: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    proc = subprocess.Popen([sys.executable, "-m", "cypht_azure", "emulator", "--state-dir", str(state_dir), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    info_file = state_dir / "emulator.json"
    deadline = time.monotonic() + 20
    while not info_file.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return proc, json.loads(info_file.read_text())


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    return out, err


def test_port_in_use_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "cypht_azure", "emulator", "--state-dir", str(tmp_path),
                            "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r
    assert f"error: Port {port} on 127.0.0.1 is already in use" in r.stderr
    assert "choose another --port" in r.stderr and "Traceback" not in r.stderr + r.stdout


def test_a_second_emulator_on_the_same_state_dir_is_refused_and_the_first_keeps_its_file(tmp_path: Path) -> None:
    first, info = _start(tmp_path)
    try:
        r = subprocess.run([sys.executable, "-m", "cypht_azure", "emulator", "--state-dir", str(tmp_path)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 1, r
        assert (f"error: Another emulator (pid {info['pid']}, {info['authority_host']}) is serving {tmp_path}. "
                "Stop it first, or give this one another --state-dir.") in r.stderr
        assert "Traceback" not in r.stderr
        assert json.loads((tmp_path / "emulator.json").read_text())["pid"] == info["pid"]
    finally:
        _stop(first)
    assert not (tmp_path / "emulator.json").exists()


def test_the_banner_commands_work_as_printed(tmp_path: Path) -> None:
    from tests.tool.conftest import clean_environ

    state = tmp_path / "state"
    proc, info = _start(state)
    try:
        home = tmp_path / "home"
        home.mkdir()
        env = clean_environ(home)
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
        out_lines = []
        while len(out_lines) < 40:  # the banner is printed in one write before emulator.json is read
            line = proc.stdout.readline() if proc.stdout else ""
            if not line or line.startswith("Press Ctrl+C"):
                break
            out_lines.append(line.rstrip("\n"))
        commands = [line.strip() for line in out_lines if line.startswith(("  export ", "  cypht-azure "))]
        assert any(c.startswith("cypht-azure provision ") for c in commands), out_lines
        assert not any(re.search(r"\bpython\b", c) for c in commands)
        script = "set -e\n" + "\n".join(commands) + "\n"
        r = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        written = (tmp_path / "cypht.env").read_text()
        assert "OUTLOOK_CLIENT_SECRET=" in written
        assert info["admin_client_secret"] not in r.stdout + r.stderr
    finally:
        _stop(proc)
    printed = "\n".join(out_lines)
    assert f"OUTLOOK_AUTH_URI='{info['authority_host']}/oauth20_authorize.srf'" in printed
    assert "Sign-in (page:" in printed


def _banner(proc: subprocess.Popen[str]) -> list[str]:
    lines: list[str] = []
    while len(lines) < 60:  # the banner is printed in one write before emulator.json is read
        line = proc.stdout.readline() if proc.stdout else ""
        if not line or line.startswith("Press Ctrl+C"):
            break
        lines.append(line.rstrip("\n"))
    return lines


def test_the_banners_lines_for_cypht_are_what_provision_emulator_endpoints_writes(tmp_path: Path) -> None:
    """Issue 19 item 13: the banner printed v2 endpoints for OFFICE365 (AADSTS650053 with Cypht's wl.imap)
    and no *_REFRESH_URI; it prints exactly the endpoint lines the rehearsal's provision writes."""
    from tests.tool.conftest import clean_environ

    state = tmp_path / "state"
    proc, info = _start(state, "--host", "cypht-emulator.test")
    try:
        home = tmp_path / "home"
        home.mkdir()
        env = clean_environ(home)
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
        banner = _banner(proc)
        commands = [line.strip() for line in banner if line.startswith(("  export ", "  cypht-azure provision "))]
        # the rehearsal: the banner's own provision command with the options its Cypht lines name
        rehearsal = re.search(r"`provision (--emulator-endpoints --emulator-url \S+)` writes them", "\n".join(banner))
        assert rehearsal, banner
        commands[-1] += " " + rehearsal.group(1)
        r = subprocess.run(["bash", "-c", "set -e\n" + "\n".join(commands) + "\n"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        _stop(proc)
    printed = [line.strip() for line in banner if re.match(r"  (OUTLOOK|OFFICE365)_", line)]
    written = [line for line in (tmp_path / "cypht.env").read_text().splitlines()
               if re.match(r"(OUTLOOK|OFFICE365)_(AUTH|TOKEN|REFRESH)_URI=", line)]
    assert printed == written and len(written) == 6, (printed, written)
    port = info["authority_host"].rsplit(":", 1)[1]
    assert f"OFFICE365_AUTH_URI='https://cypht-emulator.test:{port}/oauth20_authorize.srf'" in printed


def test_host_names_go_into_the_certificate_and_the_ca_is_kept(tmp_path: Path) -> None:
    from cypht_azure.emulator import Emulator

    with Emulator(tmp_path) as emu:
        ca_before = Path(emu.ca_file).read_bytes()
        port = emu.port
    with Emulator(tmp_path, hosts=["cypht-emulator.test", "10.9.8.7"]) as emu:
        assert Path(emu.ca_file).read_bytes() == ca_before  # clients keep trusting the same CA
        ctx = ssl.create_default_context(cafile=emu.ca_file)
        for name in ("cypht-emulator.test", "127.0.0.1", "localhost"):
            with socket.create_connection(("127.0.0.1", emu.port)) as raw, \
                    ctx.wrap_socket(raw, server_hostname=name) as tls:
                assert tls.version()
        with socket.create_connection(("127.0.0.1", emu.port)) as raw, pytest.raises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(raw, server_hostname="other.test")
        assert port  # the first run's port is free again; names do not depend on it


def test_beyond_loopback_the_admin_endpoints_need_the_admins_token() -> None:
    from cypht_azure.emulator import Emulator

    from .conftest import ca_context, token_for

    with Emulator(bind="0.0.0.0") as emu:
        info = emu.info
        url = f"{emu.base_url}/_emulator/faults"
        ctx = ca_context(emu)
        r = httpx.get(url, verify=ctx)
        assert r.status_code == 401 and "admin's token" in r.json()["error"]["message"]
        assert r.headers["www-authenticate"].startswith("Bearer")
        other_id, other_secret = emu.directory.add_app_identity("someone else")
        r = httpx.post(url + "/add", json={"status": 503}, verify=ctx,
                       headers={"Authorization": f"Bearer {token_for(emu, other_id, other_secret)}"})
        assert r.status_code == 403 and emu.faults.describe()["rules"] == []
        admin = {"Authorization": f"Bearer {token_for(emu, info['admin_client_id'], info['admin_client_secret'])}"}
        assert httpx.get(url, verify=ctx, headers=admin).status_code == 200
        assert httpx.get(f"{emu.base_url}/_emulator/info", verify=ctx, headers=admin).json()["bind"] == "0.0.0.0"
    with Emulator() as emu:  # on loopback, local clients need no token
        assert httpx.get(f"{emu.base_url}/_emulator/faults", verify=ca_context(emu)).status_code == 200


def test_the_commands_sign_in_switch(tmp_path: Path) -> None:
    bad = subprocess.run([sys.executable, "-m", "cypht_azure", "emulator", "--state-dir", str(tmp_path),
                          "--sign-in", "bogus"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "'bogus' is not one of page, auto." in bad.stderr
    proc, info = _start(tmp_path, "--sign-in", "auto", "--host", "cypht-emulator.test")
    try:
        assert info["sign_in"] == "auto"
        ctx = ssl.create_default_context(cafile=info["ca_file"])
        r = httpx.get(f"{info['authority_host']}/{info['tenant_id']}/oauth2/v2.0/authorize", verify=ctx, params={
            "client_id": info["device_code_client_id"], "response_type": "code", "redirect_uri": "http://localhost",
            "scope": "openid", "login_hint": info["admin_user"]})
        assert r.status_code == 302 and r.headers["location"].startswith("http://localhost?code=")
    finally:
        out, _ = _stop(proc)
    assert "Sign-in (auto:" in out
    port = info["authority_host"].rsplit(":", 1)[1]
    assert f"OUTLOOK_AUTH_URI='https://cypht-emulator.test:{port}/oauth20_authorize.srf'" in out  # what Cypht uses
