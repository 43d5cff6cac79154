"""Run the real `cypht-azure` CLI in a subprocess against the emulator fixture, over real HTTPS."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass
class CliResult:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)

    def __str__(self) -> str:
        return f"cypht-azure {' '.join(self.args)} -> {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


def clean_environ(home: Path) -> dict[str, str]:
    """The test's environment minus anything that would sign in elsewhere or pick another .env."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AZURE_", "CYPHT_AZURE_", "MSAL_", "IDENTITY_", "MSI_")) and k != "CYPHT_DOTENV"}
    env["HOME"] = str(home)
    env["XDG_STATE_HOME"] = str(home / ".state")
    # Tests run as root in CI: keep the audit log and deploy hooks out of /var/log and /etc.
    env["CYPHT_AZURE_LOG_DIR"] = str(home / ".state" / "cypht-azure")
    env["CYPHT_AZURE_HOOKS_DIR"] = str(home / ".config" / "cypht-azure" / "deploy-hooks.d")
    env["CYPHT_AZURE_RECORD_DIR"] = str(home / ".config" / "cypht-azure" / "installations")
    env["PYTHONPATH"] = str(REPO)
    env.pop("CI", None)
    return env


Cli = Callable[..., CliResult]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def admin_env(emulator: Any, home: Path) -> dict[str, str]:
    """A run signed in as the emulator's administrator (a service principal), secrets via the environment."""
    info = emulator.info
    env = clean_environ(home)
    env.update({
        "CYPHT_AZURE_AUTH": "environment",
        "AZURE_TENANT_ID": info["tenant_id"],
        "AZURE_CLIENT_ID": info["admin_client_id"],
        "AZURE_CLIENT_SECRET": info["admin_client_secret"],
        "CYPHT_AZURE_AUTHORITY_HOST": info["authority_host"],
        "CYPHT_AZURE_GRAPH_URL": info["graph_url"],
        "CYPHT_AZURE_CA_FILE": info["ca_file"],
        "CYPHT_AZURE_VERIFY_TIMEOUT": "20",
        "CYPHT_AZURE_TIMEOUT": "5",
    })
    return env


@pytest.fixture
def cli_env(emulator: Any, home: Path) -> dict[str, str]:
    return admin_env(emulator, home)


@pytest.fixture
def cli(cli_env: dict[str, str], tmp_path: Path) -> Cli:
    def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 90,
            stdin: str | None = None) -> CliResult:
        full_env = dict(cli_env)
        full_env.update(env or {})
        proc = subprocess.run(
            [sys.executable, "-m", "cypht_azure", *args], env=full_env, cwd=cwd or tmp_path,
            capture_output=True, text=True, timeout=timeout, input=stdin,
        )
        return CliResult(tuple(args), proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    return tmp_path / "cypht" / ".env"


@pytest.fixture(autouse=True)
def _no_leftover_cwd(tmp_path: Path) -> Iterator[None]:
    yield
    shutil.rmtree(tmp_path / "home" / ".state", ignore_errors=True)


def graph_requests(emulator: Any) -> list[tuple[str, str]]:
    return [(e.method, e.path) for e in emulator.request_log if e.kind == "graph"]


def token_requests(emulator: Any) -> list[Any]:
    return [e for e in emulator.request_log if e.kind == "token"]


def writes(emulator: Any) -> list[tuple[str, str]]:
    return [(m, p) for m, p in graph_requests(emulator) if m != "GET"]


def cypht_apps(emulator: Any) -> list[dict[str, Any]]:
    """App registrations tagged by cypht-azure (the emulator also holds its own seeded identities)."""
    return [a for a in emulator.directory.applications() if "cypht-azure" in (a.get("tags") or [])]


def update_app(emulator: Any, object_id: str, patch: dict[str, Any], *, validate: bool = True) -> None:
    """Change an app behind the tool's back (as an admin in the portal would); validate=False forces a
    state Graph would refuse today, as older registrations can be."""
    from cypht_azure.emulator.models import SYSTEM

    directory = emulator.directory
    if validate:
        directory.app_update(SYSTEM, ("id", object_id), patch)
        return
    with directory.store.write():
        directory.data["applications"][object_id.lower()].update(patch)
        directory.store.mark_dirty()


def delete_app(emulator: Any, object_id: str) -> None:
    from cypht_azure.emulator.models import SYSTEM

    emulator.directory.app_delete(SYSTEM, ("id", object_id))


def remove_secret(emulator: Any, object_id: str, key_id: str) -> None:
    from cypht_azure.emulator.models import SYSTEM

    emulator.directory.remove_password_op(SYSTEM, "application", ("id", object_id), {"keyId": key_id})


def record_of(home: Path, env_file: Path) -> dict[str, Any]:
    """The installation record the CLI keeps for `env_file` (CYPHT_AZURE_RECORD_DIR of these tests), as JSON."""
    from cypht_azure.operations.unattended import record

    path = record.path_for(env_file, home / ".config" / "cypht-azure" / "installations")
    return dict(json.loads(path.read_text()))
