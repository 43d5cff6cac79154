"""Sign-in methods of the real CLI against the emulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.tool.conftest import Cli, cypht_apps
from tests.tool.test_provision import URL


def test_device_code_sign_in_as_a_user(cli: Cli, emulator: Any, env_file: Path) -> None:
    env_file.parent.mkdir()
    r = cli("provision", "--url", URL, "--env-file", str(env_file), "--json", "--no-verify",
            env={"CYPHT_AZURE_AUTH": "device-code", "AZURE_CLIENT_ID": "", "AZURE_CLIENT_SECRET": ""})
    assert r.returncode == 0, r
    assert "enter the code" in r.stderr  # the prompt a person follows
    device = [e for e in emulator.request_log if e.kind == "devicecode"]
    assert len(device) == 1
    assert len(cypht_apps(emulator)) == 1
    owners = emulator.directory.owners_of(r.json["object_id"])
    assert owners, "the signed-in user owns the registration it created"


def test_auto_without_credentials_or_terminal_says_how_to_sign_in(cli: Cli, env_file: Path, emulator: Any) -> None:
    env_file.parent.mkdir()
    r = cli("provision", "--url", URL, "--env-file", str(env_file),
            env={"CYPHT_AZURE_AUTH": "auto", "AZURE_CLIENT_ID": "", "AZURE_CLIENT_SECRET": "", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 3, r
    assert "az login" in r.stderr and "--sandbox" in r.stderr
    assert not env_file.exists()
    assert [e for e in emulator.request_log if e.kind == "graph"] == []


def test_missing_role_names_the_roles(cli: Cli, emulator: Any, env_file: Path) -> None:
    reader_id, reader_secret = emulator.directory.add_app_identity("reader", roles=["Application.Read.All"])
    env_file.parent.mkdir()
    r = cli("provision", "--url", URL, "--env-file", str(env_file),
            env={"AZURE_CLIENT_ID": reader_id, "AZURE_CLIENT_SECRET": reader_secret})
    assert r.returncode == 4, r
    for role in ("Application Developer", "Cloud Application Administrator", "Application Administrator",
                 "Application.ReadWrite.All"):
        assert role in r.stderr
    assert not env_file.exists()
    assert cypht_apps(emulator) == []
