"""Run inside a fresh network namespace (``unshare -n``): start ``cypht-azure emulator --bind ADDR`` on
a non-loopback address of that namespace, try every token path to admin rights without the admin's
credential, and print what each answered as one JSON object (test_beyond_loopback.py reads it).

Usage: python beyond_loopback_probe.py ADDR STATE_DIR
"""

from __future__ import annotations

import base64
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

GRAPH_DEFAULT = "https://graph.microsoft.com/.default"


def _network(address: str) -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], check=True)


def _start(address: str, state: Path) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    proc = subprocess.Popen([sys.executable, "-m", "cypht_azure", "emulator", "--state-dir", str(state),
                             "--bind", address, "--sign-in", "auto"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    info_file = state / "emulator.json"
    deadline = time.monotonic() + 60
    while not info_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the emulator did not start: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.05)
    time.sleep(0.1)  # written atomically; the banner follows
    return proc, json.loads(info_file.read_text())


def _enc(obj: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def probe(address: str, state: Path) -> dict[str, Any]:
    proc, info = _start(address, state)
    out: dict[str, Any] = {"authority_host": info["authority_host"]}
    try:
        base, tid = info["authority_host"], info["tenant_id"]
        token_url = f"{base}/{tid}/oauth2/v2.0/token"
        client = httpx.Client(verify=ssl.create_default_context(cafile=info["ca_file"]), follow_redirects=False,
                              timeout=20)

        def admin_rights(token: str | None) -> int:
            """The status /_emulator/faults answers this token (200: admin rights)."""
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return client.get(f"{base}/_emulator/faults", headers=headers).status_code

        admin_form = {"grant_type": "client_credentials", "client_id": info["admin_client_id"],
                      "scope": GRAPH_DEFAULT}
        # client credentials: without the secret, with a wrong one, and with the right one
        out["cc_no_secret"] = client.post(token_url, data=admin_form).status_code
        out["cc_wrong_secret"] = client.post(token_url, data={**admin_form, "client_secret": "guess"}).status_code
        good = client.post(token_url, data={**admin_form, "client_secret": info["admin_client_secret"]})
        admin_token = good.json()["access_token"]
        out["cc_admin"] = admin_rights(admin_token)
        out["no_token"] = admin_rights(None)

        # /msi/token: the admin app's client ID is printed in the banner
        msi = f"{base}/msi/token"
        params = {"resource": "https://graph.microsoft.com", "client_id": info["admin_client_id"],
                  "api-version": "2019-08-01"}
        r = client.get(msi, params=params, headers={"X-IDENTITY-HEADER": "anything"})
        out["msi_guess"] = r.status_code
        out["msi_guess_rights"] = admin_rights(r.json().get("access_token")) if r.status_code == 200 else None
        r = client.get(msi, params=params, headers={"X-IDENTITY-HEADER": info.get("identity_header", "none")})
        out["msi_with_header"] = r.status_code

        # workload identity: a federated credential on the admin app, an assertion nobody signed
        app = client.get(f"{base}/v1.0/applications(appId='{info['admin_client_id']}')",
                         headers={"Authorization": f"Bearer {admin_token}"}).json()
        fic = {"name": "github-main", "issuer": "https://token.actions.githubusercontent.com",
               "subject": "repo:cypht-org/cypht:ref:refs/heads/master", "audiences": ["api://AzureADTokenExchange"]}
        out["fic_created"] = client.post(f"{base}/v1.0/applications/{app['id']}/federatedIdentityCredentials",
                                         json=fic, headers={"Authorization": f"Bearer {admin_token}"}).status_code
        now = int(time.time())
        forged = (f"{_enc({'alg': 'RS256', 'typ': 'JWT'})}."
                  f"{_enc({'iss': fic['issuer'], 'sub': fic['subject'], 'aud': fic['audiences'][0], 'iat': now, 'exp': now + 600})}"
                  ".c2lnbmF0dXJl")
        r = client.post(token_url, data={**admin_form, "client_assertion": forged, "client_assertion_type":
                                         "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"})
        out["wi_forged"] = r.status_code
        out["wi_forged_codes"] = r.json().get("error_codes")
        out["wi_forged_rights"] = admin_rights(r.json().get("access_token")) if r.status_code == 200 else None

        # device code: the approver is the admin user (Application Administrator)
        device = client.post(f"{base}/{tid}/oauth2/v2.0/devicecode",
                             data={"client_id": info["device_code_client_id"], "scope": GRAPH_DEFAULT}).json()
        poll = {"grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "client_id": info["device_code_client_id"], "device_code": device["device_code"]}
        r = client.post(token_url, data=poll)
        out["device_unapproved"] = r.status_code, r.json().get("error")
        if r.status_code == 200:  # a token for the admin user, as the emulator was: start another
            device = client.post(f"{base}/{tid}/oauth2/v2.0/devicecode",
                                 data={"client_id": info["device_code_client_id"], "scope": GRAPH_DEFAULT}).json()
            poll["device_code"] = device["device_code"]
        approve = f"{base}/_emulator/devicelogin"
        out["device_approve_without_token"] = client.post(
            approve, json={"user_code": device["user_code"]}).status_code
        out["device_approve_as_admin"] = client.post(approve, json={"user_code": device["user_code"]},
                                                     headers={"Authorization": f"Bearer {admin_token}"}).status_code
        r = client.post(token_url, data=poll)
        out["device_approved"] = r.status_code

        # the authorization-code flow: no password is asked on the emulator's page
        r = client.get(f"{base}/organizations/oauth2/v2.0/authorize", params={
            "client_id": info["device_code_client_id"], "redirect_uri": "http://localhost", "response_type": "code",
            "scope": GRAPH_DEFAULT, "login_hint": info["admin_user"]})
        code = dict(parse_qsl(urlsplit(r.headers.get("location", "")).query)).get("code")
        out["authcode_admin"] = r.status_code, bool(code), "administrator role" in r.text
        client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        banner, _ = proc.communicate(timeout=30)
    out["banner"] = banner
    return out


if __name__ == "__main__":
    _network(sys.argv[1])
    os.environ.pop("SSL_CERT_FILE", None)
    print(json.dumps(probe(sys.argv[1], Path(sys.argv[2]))))
