"""Round trips that need only what came before run at the same time (issue 14)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.tool.conftest import Cli
from tests.tool.test_provision import URL


def span(emulator: Any, suffix: str) -> tuple[float, float]:
    (entry,) = [e for e in emulator.request_log if e.kind == "graph" and e.path.split("?")[0].endswith(suffix)]
    return entry.timestamp - entry.duration_ms / 1000, entry.timestamp


def test_service_principal_and_secret_are_created_at_the_same_time(cli: Cli, emulator: Any, env_file: Path) -> None:
    env_file.parent.mkdir()
    emulator.faults.latency(0.3, kind="graph")  # each request takes 0.3 s: one after the other, they could not meet
    r = cli("provision", "--url", URL, "--env-file", str(env_file), "--no-verify", "--json")
    assert r.returncode == 0, r
    sp, secret = span(emulator, "/servicePrincipals"), span(emulator, "/addPassword")
    assert sp[0] < secret[1] and secret[0] < sp[1], f"service principal {sp}, addPassword {secret}"
    assert [s["step"] for s in r.json["steps"]][:3] == ["CreateRegistration", "CreateServicePrincipal", "AddSecret"]


def test_a_refused_service_principal_takes_back_the_secret_made_alongside(cli: Cli, emulator: Any,
                                                                          env_file: Path) -> None:
    env_file.parent.mkdir()
    emulator.faults.add(method="POST", path="^/v1.0/servicePrincipals$", status=403, times=None)
    r = cli("provision", "--url", URL, "--env-file", str(env_file), "--no-verify", "--json")
    assert r.returncode == 4, r
    apps = [a for a in emulator.directory.applications() if "cypht-azure" in (a.get("tags") or [])]
    assert [a.get("passwordCredentials") for a in apps] == [[]]
    removed = [e for e in emulator.request_log if e.path.split("?")[0].endswith("/removePassword")]
    added = [e for e in emulator.request_log if e.path.split("?")[0].endswith("/addPassword") and e.status == 200]
    assert len(added) == len(removed) == 1  # added at the same time as the refusal, then undone
    assert not env_file.exists() or "OUTLOOK_CLIENT_SECRET" not in env_file.read_text()
