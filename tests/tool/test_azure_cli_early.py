"""--auth azure-cli starts `az account get-access-token` before the heavy imports, and answers as
azure-identity's AzureCliCredential does (same command line, same errors and texts)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.emulator.test_azure_cli import find_az
from tests.tool.conftest import Cli
from tests.tool.test_provision import URL


@pytest.fixture
def early_az(emulator: Any, tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A stub `az` in front of the real Azure CLI that records its arguments and whether the process
    that started it had loaded azure-identity's stack yet (cryptography's native module mapped)."""
    from cypht_azure.emulator.azure_cli import az_environment

    real = find_az()
    az_env, setup = az_environment(emulator, tmp_path / "azure-config", real)
    for argv in setup:
        proc = subprocess.run(argv, env=az_env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{argv[1:3]}: {proc.stderr[-2000:]}"
    stub_dir, spawns = tmp_path / "stub-bin", tmp_path / "az-spawns"
    stub_dir.mkdir()
    stub = stub_dir / "az"
    stub.write_text("#!/bin/sh\n"
                    f'if grep -q "cryptography" /proc/$PPID/maps; then when=late; else when=early; fi\n'
                    f'echo "$when $*" >> "{spawns}"\nexec "{real}" "$@"\n')
    stub.chmod(0o755)
    spawns.write_text("")
    env = {k: v for k, v in az_env.items() if k.startswith("AZURE_") or k == "REQUESTS_CA_BUNDLE"}
    env.pop("AZURE_CLIENT_SECRET")
    env.update({"CYPHT_AZURE_AUTH": "azure-cli", "AZURE_CLIENT_ID": "", "AZURE_TENANT_ID": "",
                "PATH": f"{stub_dir}{os.pathsep}{os.environ['PATH']}"})
    return env, spawns


def test_az_starts_before_the_sign_in_stack_is_loaded(cli: Cli, emulator: Any, env_file: Path,
                                                      early_az: tuple[dict[str, str], Path]) -> None:
    env, spawns = early_az
    env_file.parent.mkdir()
    r = cli("provision", "--url", URL, "--env-file", str(env_file), "--no-verify", env=env, timeout=180)
    assert r.returncode == 0, r
    (line,) = spawns.read_text().splitlines()  # one az per run, the early one
    when, args = line.split(" ", 1)
    assert args == "account get-access-token --output json --resource https://graph.microsoft.com", line
    assert when == "early", line


def test_an_early_az_for_another_tenant_is_replaced(cli: Cli, emulator: Any, env_file: Path,
                                                    early_az: tuple[dict[str, str], Path]) -> None:
    """The tenant recorded for the installation differs from the command line's: the early process is
    stopped and the right command run (a tenant recorded by an earlier run, read from .env)."""
    env, spawns = early_az
    env_file.parent.mkdir()
    tenant = emulator.info["tenant_id"]
    first = cli("provision", "--url", URL, "--env-file", str(env_file), "--no-verify", "--tenant", tenant,
                env=env, timeout=180)
    assert first.returncode == 0, first
    spawns.write_text("")
    r = cli("status", "--env-file", str(env_file), env=env, timeout=180)
    assert r.returncode in (0, 6), r
    lines = [line.split(" ", 1)[1] for line in spawns.read_text().splitlines()]
    resource = "account get-access-token --output json --resource https://graph.microsoft.com"
    assert lines == [resource, f"{resource} --tenant {tenant}"], lines  # the early one (stopped), the right one


SCRIPTS = {
    "token": 'echo \'{"accessToken": "abc", "expiresOn": "2099-01-01 00:00:00.000000", "expires_on": 4070908800}\'',
    "not-logged-in": "echo \"ERROR: Please run 'az login' to setup account.\" >&2; exit 1",
    "aadsts": "echo 'ERROR: AADSTS50076: Due to a configuration change ... az login' >&2; exit 1",
    "other-error": "echo 'ERROR: something else went wrong' >&2; exit 2",
    "silent-error": "exit 3",
    "garbage": "echo '{\"accessToken\": \"leaked-token\", \"nothing\": 1}'",
    "not-found": "exit 127",
}


@pytest.mark.parametrize("case", list(SCRIPTS))
def test_same_answers_and_texts_as_azure_identity(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.identity import AzureCliCredential

    from cypht_azure import azcli

    stub = tmp_path / "az"
    stub.write_text(f"#!/bin/sh\n{SCRIPTS[case]}\n")
    stub.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")

    def outcome(credential: Any) -> tuple[str, str]:
        try:
            token = credential.get_token("https://graph.microsoft.com/.default")
        except Exception as exc:  # the type and the text are what is compared
            return type(exc).__name__, str(exc)
        return "token", f"{token.token} {token.expires_on}"

    azcli.start_early("https://graph.microsoft.com", "contoso.onmicrosoft.com")
    ours = outcome(azcli.AzureCliToken(tenant_id="contoso.onmicrosoft.com"))
    assert ours == outcome(AzureCliCredential(tenant_id="contoso.onmicrosoft.com"))
    assert "leaked-token" not in ours[1]


def test_an_invalid_tenant_is_refused_as_azure_identity_does() -> None:
    from azure.identity import AzureCliCredential

    from cypht_azure import azcli

    with pytest.raises(ValueError) as theirs:
        AzureCliCredential(tenant_id="bad tenant")
    with pytest.raises(ValueError) as ours:
        azcli.AzureCliToken(tenant_id="bad tenant")
    assert str(ours.value) == str(theirs.value)


def test_help_and_commands_that_do_not_sign_in_start_no_az(cli: Cli, tmp_path: Path) -> None:
    spawns = tmp_path / "spawns"
    stub = tmp_path / "bin" / "az"
    stub.parent.mkdir()
    stub.write_text(f'#!/bin/sh\necho "$*" >> "{spawns}"\n')
    stub.chmod(0o755)
    env = {"CYPHT_AZURE_AUTH": "azure-cli", "PATH": f"{stub.parent}{os.pathsep}{os.environ['PATH']}"}
    for argv in (("provision", "--help"), ("rotate-secret", "--auth", "azure-cli", "-h"), ("log", "--help"),
                 ("--help",)):
        r = cli(*argv, env=env)
        assert r.returncode == 0, r
    assert not spawns.exists()
