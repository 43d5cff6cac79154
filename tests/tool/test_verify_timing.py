"""The secret check notices a new secret soon after Entra starts accepting it, without hammering Entra."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cypht_azure.operations.core.session import poll_interval
from tests.tool.conftest import Cli
from tests.tool.test_provision import URL


def test_poll_interval_starts_fast_and_grows_with_the_wait() -> None:
    assert [poll_interval(t) for t in (0, 1, 2, 4, 8, 20, 40, 300)] == [0.25, 0.25, 0.25, 0.5, 1.0, 2.5, 5.0, 5.0]
    elapsed, tries = 0.0, 0
    while elapsed < 120:  # the default --verify-timeout
        elapsed += poll_interval(elapsed)
        tries += 1
    assert tries < 60


def test_secret_verified_within_half_a_second_of_activation(cli: Cli, emulator: Any, env_file: Path) -> None:
    env_file.parent.mkdir()
    emulator.faults.secret_activation_delay(ms=3000)
    r = cli("provision", "--url", URL, "--env-file", str(env_file), "--json")
    assert r.returncode == 0, r
    assert r.json["secret_verified"] is True
    log = emulator.request_log
    added = next(e.timestamp for e in log if e.path.split("?")[0].endswith("/addPassword") and e.status == 200)
    tries = [e for e in log if e.kind == "token" and e.client_id == r.json["client_id"]]
    assert tries[0].fault and tries[-1].fault is None  # refused while young, then taken
    accepted = tries[-1].timestamp
    assert 3.0 <= accepted - added <= 3.5, f"verified {accepted - added:.2f} s after addPassword"
