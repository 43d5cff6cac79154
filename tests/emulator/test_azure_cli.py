"""The real Azure CLI, unmodified, against the emulator: the recipe in docs/emulator.md."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cypht_azure.emulator.azure_cli import az_environment

CANDIDATES = [os.environ.get("CYPHT_AZURE_AZ", ""), shutil.which("az") or "",
              str(Path(__file__).resolve().parents[2] / ".azcli" / "bin" / "az"), "/work/azcli-venv/bin/az"]


def find_az() -> str:
    for candidate in CANDIDATES:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    if os.environ.get("CYPHT_AZURE_REQUIRE_AZ") == "1":
        pytest.fail("the Azure CLI is required here (CYPHT_AZURE_REQUIRE_AZ=1) but was not found")
    pytest.skip("the Azure CLI (`az`) is not installed; .ci/run installs it")


def test_azure_cli_manages_apps_against_the_emulator(emulator: Any, tmp_path: Path) -> None:
    az = find_az()
    env, setup = az_environment(emulator, tmp_path / "azure-config", az)

    def run(*args: str) -> Any:
        proc = subprocess.run([az, *args, "-o", "json"], env=env, capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, f"az {' '.join(args[:3])}: {proc.stderr[-2000:]}"
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    for argv in setup:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, f"{argv[1:3]}: {proc.stderr[-2000:]}"

    created = run("ad", "app", "create", "--display-name", "az-emulator-check")
    app_id = created["appId"]
    assert emulator.directory.get_application(app_id=app_id)["displayName"] == "az-emulator-check"

    shown = run("ad", "app", "show", "--id", app_id)
    assert shown["id"] == created["id"]
    listed = run("ad", "app", "list", "--display-name", "az-emulator-check")
    assert [a["appId"] for a in listed] == [app_id]

    reset = run("ad", "app", "credential", "reset", "--id", app_id, "--append", "--display-name", "az")
    assert reset["appId"] == app_id and reset["password"]
    creds = run("ad", "app", "credential", "list", "--id", app_id)
    assert [c["displayName"] for c in creds] == ["az"]
    # the secret az received really is one the app holds (hint = first three characters)
    assert creds[0]["hint"] == reset["password"][:3]

    run("ad", "app", "delete", "--id", app_id)
    assert emulator.directory.get_application(app_id=app_id) is None
    kinds = {(e.method, e.kind) for e in emulator.request_log}
    assert ("POST", "token") in kinds and ("GET", "arm") in kinds
