"""``python -m cypht_azure.emulator --state-dir DIR``: foreground server with emulator.json."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx


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
