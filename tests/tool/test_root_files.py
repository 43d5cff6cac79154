"""Issue 18 rule 5: root's own files are root's. The audit log, last runs and the Prometheus textfile
are written only in folders no other user can change, never through a link, and no lock held by
another process stops a root run after its commit point.

Root runs the real CLI against the emulator; www-data (setpriv) is the attacker.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.tool.asroot import AS_WWW_DATA, WWW_DATA, in_namespace
from tests.tool.conftest import REPO, CliResult, admin_env
from tests.tool.test_provision import URL

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="plays root and www-data: needs root")


def run(env: dict[str, str], *args: str, prefix: list[str] | None = None, timeout: float = 90,
        cwd: Path = REPO) -> CliResult:
    proc = subprocess.run([*(prefix or []), sys.executable, "-m", "cypht_azure", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)
    return CliResult(args, proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def reachable() -> Iterator[Path]:
    """A folder www-data can reach (pytest's own temporary folders are root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="cypht-azure-test-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def provisioned(emulator: Any, home: Path, tmp_path: Path) -> tuple[dict[str, str], Path]:
    env = admin_env(emulator, home)
    env_file = tmp_path / "www" / "cypht" / ".env"
    env_file.parent.mkdir(parents=True)
    r = run(env, "provision", "--url", URL, "--env-file", str(env_file), "--json")
    assert r.returncode == 0, r
    return env, env_file


def test_a_link_planted_as_the_audit_lock_is_not_followed(provisioned: tuple[dict[str, str], Path],
                                                          tmp_path: Path, reachable: Path) -> None:
    """The old unit's LogsDirectory= gave the log folder to the .env owner: www-data links `.lock` to
    /etc/nologin-test-target. Root's run neither creates that file nor follows the link; it warns."""
    env, env_file = provisioned
    logs = reachable / "logs-of-www-data"
    logs.mkdir()
    os.chown(logs, WWW_DATA, WWW_DATA)
    planted = subprocess.run([*AS_WWW_DATA, "ln", "-s", "/etc/nologin-test-target", str(logs / ".lock")],
                             capture_output=True, text=True)
    assert planted.returncode == 0, planted.stderr
    r = run({**env, "CYPHT_AZURE_LOG_DIR": str(logs)}, "rotate-secret", "--env-file", str(env_file), "--json",
            prefix=in_namespace(tmp_path))
    assert r.returncode == 0, r
    assert not (tmp_path / "etc-upper" / "nologin-test-target").exists()
    assert not os.path.lexists("/etc/nologin-test-target")
    assert "warning: the audit log could not be written" in r.stderr
    assert f"{logs} is owned by uid {WWW_DATA}, not by root or this user" in r.stderr
    assert sorted(p.name for p in logs.iterdir()) == [".lock"]   # nothing of root's in www-data's folder


def test_a_lock_held_by_www_data_does_not_stop_roots_run_after_the_commit_point(
        provisioned: tuple[dict[str, str], Path], reachable: Path) -> None:
    """A lock file www-data can open (a careless 0644) held with flock by www-data: root's rotation
    still ends, at once, with the audit line written and a warning; it never waits on that lock."""
    env, env_file = provisioned
    logs = reachable / "logs"
    logs.mkdir(mode=0o755)
    env = {**env, "CYPHT_AZURE_LOG_DIR": str(logs)}
    lock = logs / ".lock"
    lock.touch()
    os.chmod(lock, 0o644)
    holder = subprocess.Popen([*AS_WWW_DATA, "flock", "--shared", str(lock), "sh", "-c", "echo held; sleep 120"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        r = run(env, "rotate-secret", "--env-file", str(env_file), "--json", timeout=60)
        took = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert r.returncode == 0, r
    assert took < 30, took
    assert "warning: the audit log was not fully updated: another process holds" in r.stderr
    lines = [json.loads(line) for line in (logs / "audit.log").read_text().splitlines()]
    assert lines[-1]["command"] == "rotate-secret" and lines[-1]["added"] == [r.json["new_key_id"]]


def test_audit_paths_are_absolute(emulator: Any, home: Path, tmp_path: Path) -> None:
    env = admin_env(emulator, home)
    (tmp_path / "cypht").mkdir()
    r = run(env, "provision", "--url", URL, "--env-file", "cypht/.env", "--json", cwd=tmp_path)
    assert r.returncode == 0, r
    [entry] = [json.loads(line) for line in (Path(env["CYPHT_AZURE_LOG_DIR"]) / "audit.log").read_text().splitlines()]
    assert entry["env_file"] == str(tmp_path / "cypht" / ".env")


def test_sandbox_runs_log_under_the_sandbox_folder(home: Path, tmp_path: Path) -> None:
    """A rehearsal never writes root's audit log (here: the folder CYPHT_AZURE_LOG_DIR names)."""
    from tests.tool.conftest import clean_environ

    env = clean_environ(home)
    sandbox = tmp_path / "sandbox"
    env_file = tmp_path / "cypht" / ".env"
    env_file.parent.mkdir()
    r = run(env, "provision", "--sandbox", "--sandbox-dir", str(sandbox), "--url", URL, "--env-file", str(env_file),
            "--json")
    assert r.returncode == 0, r
    assert not (Path(env["CYPHT_AZURE_LOG_DIR"]) / "audit.log").exists()
    [entry] = [json.loads(line) for line in (sandbox / "log" / "audit.log").read_text().splitlines()]
    assert entry["command"] == "provision" and entry["env_file"] == str(env_file)


def test_prometheus_textfile_in_a_folder_www_data_owns_is_refused(provisioned: tuple[dict[str, str], Path],
                                                                   tmp_path: Path) -> None:
    env, env_file = provisioned
    textfiles = tmp_path / "textfile-of-www-data"
    textfiles.mkdir()
    os.chown(textfiles, WWW_DATA, WWW_DATA)
    r = run(env, "status", "--env-file", str(env_file), "--prometheus", str(textfiles / "cypht-azure.prom"))
    assert r.returncode == 1, r
    assert f"{textfiles} is owned by uid {WWW_DATA}, not by root or this user" in r.stderr
    assert not list(textfiles.iterdir())


def test_concurrent_textfile_updates_keep_each_others_samples(provisioned: tuple[dict[str, str], Path],
                                                              tmp_path: Path) -> None:
    """Another installation's `status --prometheus` has read the file and is about to replace it (it
    holds the lock): this run waits for it, then merges, so neither loses the other's samples."""
    from cypht_azure.operations.unattended import prometheus

    env, env_file = provisioned
    prom = tmp_path / "textfile" / "cypht-azure.prom"
    prom.parent.mkdir()
    other = "/srv/other/.env"
    fd = os.open(prom.parent / ".cypht-azure.prom.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        seen_by_other = prom.read_text() if prom.exists() else ""
        ours = subprocess.Popen([sys.executable, "-m", "cypht_azure", "status", "--env-file", str(env_file),
                                 "--prometheus", str(prom)], env=env, cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        with contextlib.suppress(subprocess.TimeoutExpired):
            ours.wait(timeout=6)   # a run that does not wait for the lock is done by now
        prom.write_text(seen_by_other + "".join(f'{name}{{env_file="{other}"}} 1\n' for name in prometheus.METRICS))
    finally:
        os.close(fd)
    _, err = ours.communicate(timeout=60)
    assert ours.returncode == 0, err
    text = prom.read_text()
    assert f'env_file="{other}"' in text and f'env_file="{env_file}"' in text
