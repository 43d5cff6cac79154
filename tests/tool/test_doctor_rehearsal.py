"""`doctor` in a rehearsal (issue 19, item 16): the `.env`'s endpoints point at the emulator, so the
`scope-invalid` fix names the emulator's Live endpoints, not "remove the overrides" (which would send
Cypht to the real login.live.com); applied as printed, doctor is satisfied."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.tool.conftest import Cli
from tests.tool.test_doctor import codes, doctor, edit
from tests.tool.test_provision import provision


def test_in_a_rehearsal_scope_invalid_names_the_emulators_live_endpoints(cli: Cli, emulator: Any,
                                                                          env_file: Path) -> None:
    env_file.parent.mkdir()
    assert provision(cli, env_file, "--emulator-endpoints").returncode == 0
    base = emulator.info["authority_host"]
    v2 = f"{base}/common/oauth2/v2.0/"
    edit(env_file, OFFICE365_AUTH_URI=v2 + "authorize", OFFICE365_TOKEN_URI=v2 + "token",
         OFFICE365_REFRESH_URI=v2 + "token")
    r = doctor(cli, env_file, "--provider", "office365")
    assert r.returncode == 6 and "scope-invalid" in codes(r)
    fix = next(f["fix"] for f in r.json["findings"] if f["code"] == "scope-invalid")
    suggested = dict(re.findall(r"\b(OFFICE365_[A-Z]+_URI)=(\S+)", fix))
    assert suggested == {"OFFICE365_AUTH_URI": f"{base}/oauth20_authorize.srf",
                         "OFFICE365_TOKEN_URI": f"{base}/oauth20_token.srf",
                         "OFFICE365_REFRESH_URI": f"{base}/oauth20_token.srf"}, fix
    edit(env_file, **suggested)
    again = doctor(cli, env_file, "--provider", "office365")
    assert again.returncode == 0 and codes(again) == set(), again.json["findings"]

