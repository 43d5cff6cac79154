"""`schedule install/show/remove` through the real CLI: units that systemd accepts, a cron entry where
systemd is absent, a credentials file that is private and never overwritten."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tool.conftest import CliResult, clean_environ


def run(home: Path, *args: str) -> CliResult:
    proc = subprocess.run([sys.executable, "-m", "cypht_azure", *args], env=clean_environ(home),
                          capture_output=True, text=True, timeout=60)
    return CliResult(args, proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / "srv" / "cypht dir" / ".env"   # a space, as real paths sometimes have
    path.parent.mkdir(parents=True)
    path.write_text("OUTLOOK_CLIENT_ID=x\n")
    return path


def install_systemd(home: Path, tmp_path: Path, env_file: Path, *extra: str) -> CliResult:
    return run(home, "schedule", "install", "--env-file", str(env_file), "--systemd-dir", str(tmp_path / "units"),
               "--credentials-file", str(tmp_path / "etc" / "rotate.credentials"), *extra)


def verify(*units: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", "verify", *map(str, units)], capture_output=True, text=True,
                          timeout=60)


@pytest.fixture(autouse=True)
def _systemd_analyze() -> None:
    if shutil.which("systemd-analyze") is None:
        if os.environ.get("CI") or os.environ.get("CYPHT_AZURE_REQUIRE_PHP"):
            pytest.fail("systemd-analyze is missing: .ci/run installs Debian's systemd package")
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")


def test_install_writes_units_that_systemd_accepts(home: Path, tmp_path: Path, env_file: Path) -> None:
    r = install_systemd(home, tmp_path, env_file, "--json")
    assert r.returncode == 0, r
    doc = r.json
    [sched] = doc["schedules"]
    unit = sched["unit"]
    assert unit.startswith("cypht-azure-rotate-") and sched["kind"] == "systemd" and sched["run_as"] == "root:root"
    service, timer = tmp_path / "units" / f"{unit}.service", tmp_path / "units" / f"{unit}.timer"
    result = verify(service, timer)
    assert result.returncode == 0, result.stderr
    text = service.read_text()
    program = str(Path(sys.executable).parent / "cypht-azure")
    assert f'ExecStart={program} rotate-secret --when-due --env-file "{env_file}"\n' in text
    assert "User=root\nGroup=root\n" in text
    assert "LogsDirectory" not in text and "CYPHT_AZURE_LOG_DIR" not in text
    assert f"EnvironmentFile={tmp_path / 'etc' / 'rotate.credentials'}\n" in text
    timer_text = timer.read_text()
    for line in ["OnCalendar=*-*-* 00,12:00:00", "RandomizedDelaySec=12h", "Persistent=true", "WantedBy=timers.target"]:
        assert line + "\n" in timer_text
    creds = tmp_path / "etc" / "rotate.credentials"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert all(line.startswith("#") for line in creds.read_text().splitlines() if line.strip())
    assert f"systemctl enable --now {unit}.timer" in sched["next_steps"]


def test_a_broken_unit_fails_verification(tmp_path: Path) -> None:
    """The verification above can fail: a unit whose program does not exist is refused."""
    bad = tmp_path / "cypht-azure-rotate-bad.service"
    bad.write_text("[Service]\nType=oneshot\nExecStart=/nonexistent/cypht-azure rotate-secret\n")
    assert verify(bad).returncode != 0


def test_units_run_as_root_not_as_the_owner_of_the_env_file(home: Path, tmp_path: Path, env_file: Path) -> None:
    """Issue 18 rule 2: the job holds the tenant credential, so it runs as the operator (root), never as
    the web server user who owns .env; and systemd gets no LogsDirectory= handing root's log folder over."""
    os.chown(env_file, 33, 33)
    os.chown(env_file.parent, 33, 33)
    r = install_systemd(home, tmp_path, env_file, "--json")
    assert r.returncode == 0, r
    assert r.json["schedules"][0]["run_as"] == "root:root"
    service = next((tmp_path / "units").glob("*.service")).read_text()
    assert "User=root\nGroup=root\n" in service and "www-data" not in service
    assert "LogsDirectory" not in service
    creds = tmp_path / "etc" / "rotate.credentials"
    assert (creds.stat().st_uid, stat.S_IMODE(creds.stat().st_mode)) == (0, 0o600)
    assert (creds.parent.stat().st_uid, stat.S_IMODE(creds.parent.stat().st_mode)) == (0, 0o700)


def test_credentials_are_never_overwritten_and_reinstall_changes_nothing(home: Path, tmp_path: Path,
                                                                         env_file: Path) -> None:
    assert install_systemd(home, tmp_path, env_file).returncode == 0
    creds = tmp_path / "etc" / "rotate.credentials"
    creds.write_text("AZURE_CLIENT_ID=filled-in\n")
    r = install_systemd(home, tmp_path, env_file, "--json")
    assert r.returncode == 0, r
    assert [f["action"] for f in r.json["schedules"][0]["files"]] == ["unchanged", "unchanged", "keep"]
    assert creds.read_text() == "AZURE_CLIENT_ID=filled-in\n"


def test_dry_run_writes_nothing_and_shows_the_units(home: Path, tmp_path: Path, env_file: Path) -> None:
    r = install_systemd(home, tmp_path, env_file, "--dry-run")
    assert r.returncode == 0, r
    assert "Would install (dry run, nothing written) a systemd timer" in r.stdout
    assert "| RandomizedDelaySec=12h" in r.stdout and "| #CYPHT_AZURE_AUTH=environment" in r.stdout
    assert not (tmp_path / "units").exists() and not (tmp_path / "etc").exists()


def test_show_and_remove(home: Path, tmp_path: Path, env_file: Path) -> None:
    assert install_systemd(home, tmp_path, env_file).returncode == 0
    units = tmp_path / "units"
    shown = run(home, "schedule", "show", "--systemd-dir", str(units), "--json")
    assert shown.returncode == 0, shown
    [sched] = shown.json["schedules"]
    assert sched["env_file"] == str(env_file) and sched["run_as"] == "root:root"
    (units / "timers.target.wants").mkdir()
    (units / "timers.target.wants" / f"{sched['unit']}.timer").symlink_to(units / f"{sched['unit']}.timer")
    removed = run(home, "schedule", "remove", "--env-file", str(env_file), "--systemd-dir", str(units),
                  "--credentials-file", str(tmp_path / "etc" / "rotate.credentials"))
    assert removed.returncode == 0, removed
    assert not any(p.is_file() or p.is_symlink() for p in units.rglob("*"))
    assert "rotate.credentials was kept" in removed.stdout
    assert (tmp_path / "etc" / "rotate.credentials").exists()
    assert run(home, "schedule", "show", "--systemd-dir", str(units)).stdout.startswith("No cypht-azure schedule")


def test_cron_where_systemd_is_absent(home: Path, tmp_path: Path, env_file: Path) -> None:
    cron = tmp_path / "cron.d" / "cypht-azure"
    other = tmp_path / "other" / ".env"
    other.parent.mkdir()
    other.write_text("")
    for path in (env_file, other):
        r = run(home, "schedule", "install", "--env-file", str(path), "--cron-file", str(cron),
                "--credentials-file", str(tmp_path / "etc" / f"{path.parent.name}.credentials"))
        assert r.returncode == 0, r
    text = cron.read_text()
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#") and "=" not in ln.split()[0]]
    assert len(lines) == 2
    fields = lines[0].split(maxsplit=6)
    minute, hours, user = int(fields[0]), fields[1].split(","), fields[5]
    assert 0 <= minute < 60 and int(hours[1]) == int(hours[0]) + 12 and user == "root"
    assert "rotate-secret --when-due --env-file" in fields[6] and fields[6].endswith("--quiet")
    assert stat.S_IMODE(cron.stat().st_mode) == 0o644
    # cron runs it with /bin/sh: the command must be valid shell
    assert subprocess.run(["sh", "-n", "-c", fields[6]]).returncode == 0
    again = run(home, "schedule", "install", "--env-file", str(env_file), "--cron-file", str(cron),
                "--credentials-file", str(tmp_path / "etc" / f"{env_file.parent.name}.credentials"))
    assert again.returncode == 0 and cron.read_text() == text   # the chosen minute stays
    assert run(home, "schedule", "remove", "--env-file", str(env_file), "--cron-file", str(cron)).returncode == 0
    assert str(env_file) not in cron.read_text() and str(other) in cron.read_text()
    assert run(home, "schedule", "remove", "--env-file", str(other), "--cron-file", str(cron)).returncode == 0
    assert not cron.exists()


@pytest.mark.parametrize(("args", "problem"), [
    (["--env-file", "/nonexistent/.env", "--systemd-dir", "{tmp}/x"], "does not exist"),
    (["--systemd-dir", "{tmp}/x", "--cron-file", "{tmp}/y"], "choose different schedulers"),
])
def test_bad_input_writes_nothing(home: Path, tmp_path: Path, env_file: Path, args: list[str], problem: str) -> None:
    args = [a.format(tmp=tmp_path) for a in args]
    if "--env-file" not in args:
        args = [*args, "--env-file", str(env_file)]
    r = run(home, "schedule", "install", *args, "--credentials-file", str(tmp_path / "creds"))
    assert r.returncode == 2, r
    assert problem in r.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists() and not (tmp_path / "creds").exists()


def test_json_is_the_same_document_as_the_text(home: Path, tmp_path: Path, env_file: Path) -> None:
    r = install_systemd(home, tmp_path, env_file, "--json", "--dry-run")
    doc = json.loads(r.stdout)
    assert doc["action"] == "install" and doc["dry_run"] is True
    assert {f["action"] for f in doc["schedules"][0]["files"]} == {"write"}
