"""The emulator beyond loopback (issue 18, rule 8): no token path gives admin rights without the
admin's credential.

The emulator runs as ``cypht-azure emulator --bind 192.0.2.10`` in a network namespace of its own
(``unshare -n``), where that address is on the loopback interface but is not a loopback address: the
case the code treats as "beyond loopback" (admin.is_loopback). The clients run in the same namespace
(beyond_loopback_probe.py) over real HTTPS.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ADDRESS = "192.0.2.10"  # TEST-NET-1: not loopback, reachable only inside the namespace
PROBE = Path(__file__).with_name("beyond_loopback_probe.py")


@pytest.fixture(scope="module")
def attacks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("needs root, unshare and ip (a network namespace of its own)")
    state = tmp_path_factory.mktemp("emulator-beyond-loopback")
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(["unshare", "-n", "--", sys.executable, str(PROBE), ADDRESS, str(state)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_the_managed_identity_endpoint_wants_the_emulators_identity_header(attacks: dict[str, Any]) -> None:
    assert attacks["authority_host"].startswith(f"https://{ADDRESS}:")  # really beyond loopback
    # client credentials: only the admin's secret opens the admin endpoints
    assert attacks["no_token"] == 401 and attacks["cc_admin"] == 200
    assert attacks["cc_no_secret"] == 401 and attacks["cc_wrong_secret"] == 401
    assert attacks["msi_guess"] == 401 and attacks["msi_guess_rights"] is None
    assert attacks["msi_with_header"] == 200  # the header of emulator.json still works
    assert "X-IDENTITY-HEADER = identity_header of the details file" in attacks["banner"]


def test_a_federated_assertion_nobody_signed_gives_no_token(attacks: dict[str, Any]) -> None:
    assert attacks["fic_created"] == 201
    assert attacks["wi_forged"] == 401 and attacks["wi_forged_codes"] == [50013]
    assert attacks["wi_forged_rights"] is None


def test_a_device_code_waits_for_the_admins_approval(attacks: dict[str, Any]) -> None:
    assert attacks["device_unapproved"] == [400, "authorization_pending"]
    assert attacks["device_approve_without_token"] == 401
    assert attacks["device_approve_as_admin"] == 204 and attacks["device_approved"] == 200


def test_the_sign_in_page_refuses_administrators(attacks: dict[str, Any]) -> None:
    status, got_code, refused = attacks["authcode_admin"]
    assert status == 200 and not got_code and refused
