"""Issue 18 rule 6 (the part outside deploy hooks): doctor shows .env as written and nothing of its own
environment; a run's memory stays out of core files and other processes; the audit log's leak check
knows the secrets the run held, old and new."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.guarantees.harness import seed_provisioned
from tests.tool.asroot import AS_WWW_DATA, WWW_DATA
from tests.tool.conftest import REPO, Cli, admin_env


def test_doctor_prints_no_value_of_its_own_environment(cli: Cli, emulator: Any, env_file: Path) -> None:
    """www-data writes CLIENT_URI as `${AZURE_CLIENT_SECRET}`; root runs doctor with the admin's secret
    in its environment: neither the text nor --json shows it."""
    seed_provisioned(emulator, env_file)
    with env_file.open("a") as f:
        f.write('OUTLOOK_CLIENT_URI="${AZURE_CLIENT_SECRET}"\nOFFICE365_CLIENT_URI=${AZURE_CLIENT_SECRET}\n')
    admin_secret = emulator.info["admin_client_secret"]
    # and one of Cypht's own keys set in the process environment: named as shadowing, its value not shown
    marker = "https://mail.example.com/?from-the-operators-environment=" + "z" * 12
    for extra in ([], ["--json"]):
        r = cli("doctor", "--env-file", str(env_file), *extra, env={"OFFICE365_CLIENT_ID": marker})
        assert r.returncode in (0, 6), r
        assert admin_secret not in r.stdout and admin_secret not in r.stderr, r
        assert marker not in r.stdout and marker not in r.stderr, r
    assert "OFFICE365_CLIENT_ID" in r.json["providers"][1]["shadowed"]


def paused(pause: Path, proc: subprocess.Popen[bytes], seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pause.exists():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.1)
    return False


def cores_on() -> None:
    """The child starts where core files are on (as on many machines): the tool must turn them off."""
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def core_limits(pid: int) -> list[str]:
    line = next(ln for ln in Path(f"/proc/{pid}/limits").read_text().splitlines() if ln.startswith("Max core file size"))
    return line.split()[4:6]


def test_a_paused_root_run_has_core_files_off(emulator: Any, home: Path, tmp_path: Path) -> None:
    env_file = tmp_path / "cypht" / ".env"
    seed_provisioned(emulator, env_file)
    pause = tmp_path / "paused"
    env = {**admin_env(emulator, home), "CYPHT_AZURE_TEST_PAUSE_AT": "secret-verified",
           "CYPHT_AZURE_TEST_PAUSE_FILE": str(pause)}
    proc = subprocess.Popen([sys.executable, "-m", "cypht_azure", "rotate-secret", "--env-file", str(env_file)],
                            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=cores_on)
    try:
        assert paused(pause, proc), "never reached secret-verified"
        assert core_limits(proc.pid) == ["0", "0"]
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def reachable() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="cypht-azure-test-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


SYSTEM_PYTHON = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")


@pytest.mark.skipif(os.geteuid() != 0, reason="plays root and www-data: needs root")
def test_a_paused_run_is_not_dumpable(emulator: Any, reachable: Path) -> None:
    """A run paused holding the new secret (and the admin's in its environment), started by a user that
    is not root: its /proc files belong to root (PR_SET_DUMPABLE 0), so another process of that user
    cannot read its environment or memory, and it has no core limit above 0."""
    if not SYSTEM_PYTHON.exists():
        pytest.skip(f"{SYSTEM_PYTHON} (the same Python version, reachable by www-data) is not installed")
    env_file = reachable / "cypht" / ".env"
    seed_provisioned(emulator, env_file)
    home = reachable / "home"
    shutil.copy(emulator.info["ca_file"], reachable / "ca.pem")
    env = admin_env(emulator, home)
    site = next(p for p in sys.path if p.endswith("site-packages") and str(Path(sys.executable).parent.parent) in p)
    pause = reachable / "paused"
    env.update({"PYTHONPATH": f"{site}:{REPO}", "CYPHT_AZURE_CA_FILE": str(reachable / "ca.pem"),
                "CYPHT_AZURE_TEST_PAUSE_AT": "secret-verified", "CYPHT_AZURE_TEST_PAUSE_FILE": str(pause)})
    for root, dirs, files in os.walk(reachable):
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), WWW_DATA, WWW_DATA)
    os.chown(reachable, WWW_DATA, WWW_DATA)
    proc = subprocess.Popen([*AS_WWW_DATA, str(SYSTEM_PYTHON), "-m", "cypht_azure", "rotate-secret", "--env-file",
                             str(env_file)], env=env, cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=cores_on)
    try:
        assert paused(pause, proc), proc.stderr.read() if proc.poll() is not None and proc.stderr else "timeout"
        status = Path(f"/proc/{proc.pid}/status")
        uid_line = next(ln for ln in status.read_text().splitlines() if ln.startswith("Uid:"))
        assert uid_line.split()[1] == str(WWW_DATA)            # the run is www-data's …
        assert status.stat().st_uid == 0                        # … and its /proc files are root's: not dumpable
        assert core_limits(proc.pid) == ["0", "0"]
        peek = subprocess.run([*AS_WWW_DATA, "cat", f"/proc/{proc.pid}/environ"], capture_output=True)
        assert peek.returncode != 0 and emulator.info["admin_client_secret"].encode() not in peek.stdout
    finally:
        proc.kill()
        proc.wait()


def test_the_audit_leak_check_knows_the_secret_the_run_replaced(cli: Cli, emulator: Any, env_file: Path,
                                                                home: Path) -> None:
    """A line that would hold the secret .env held before the run (here: written into a hook's command
    line) is refused, with a warning: the leak check is given the run's secrets, not an empty list."""
    seeded = seed_provisioned(emulator, env_file)
    old = seeded["secret"]
    r = cli("rotate-secret", "--env-file", str(env_file), "--json", "--deploy-hook", f"true {old}")
    assert r.returncode == 0, r
    assert "an audit line would contain a secret; it was not written" in r.stderr
    log = home / ".state" / "cypht-azure" / "audit.log"
    text = log.read_text() if log.exists() else ""
    assert old not in text
    assert all(json.loads(line)["command"] for line in text.splitlines())
