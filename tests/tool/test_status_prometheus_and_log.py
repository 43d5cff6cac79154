"""`status --prometheus FILE` read back with Prometheus' own exposition-format parser, and `cypht-azure log`."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from cypht_azure.operations.core.session import parse_time
from cypht_azure.operations.unattended import audit
from tests.tool.conftest import Cli
from tests.tool.test_provision import provision


def parse(path: Path) -> dict[tuple[str, str], float]:
    samples = {}
    for family in text_string_to_metric_families(path.read_text()):
        assert family.type == "gauge" and family.documentation
        for sample in family.samples:
            samples[(sample.name, sample.labels["env_file"])] = sample.value
    return samples


def test_prometheus_textfile_per_env_file(cli: Cli, emulator: Any, tmp_path: Path, home: Path) -> None:
    prom = tmp_path / "textfile" / "cypht-azure.prom"
    first, second = tmp_path / "a" / ".env", tmp_path / "b \"quoted\"" / ".env"
    for env_file in (first, second):
        env_file.parent.mkdir()
    r = provision(cli, first, "--secret-lifetime", "20d")
    assert r.returncode == 0, r
    expires = parse_time(r.json["secret_expires"]).timestamp()
    log_dir = home / ".state" / "cypht-azure"
    audit.record_last_run(first, command="rotate-secret", exit_code=0, folder=log_dir)
    ran_at = dt.datetime.fromisoformat(audit.last_run(first, folder=log_dir)["time"].replace("Z", "+00:00")).timestamp()

    s = cli("status", "--env-file", str(first), "--prometheus", str(prom))
    assert s.returncode == 0, s
    assert parse(prom) == {
        ("cypht_azure_secret_expiry_timestamp_seconds", str(first)): expires,
        ("cypht_azure_last_run_timestamp_seconds", str(first)): ran_at,
        ("cypht_azure_last_run_success", str(first)): 1.0,
    }
    assert stat.S_IMODE(prom.stat().st_mode) == 0o644  # node-exporter runs as its own user

    # a second .env in the same file: its samples join, the first one's stay
    second.write_text("OUTLOOK_CLIENT_ID=" + r.json["client_id"] + "\n")
    audit.record_last_run(second, command="rotate-secret", exit_code=1, folder=log_dir)
    s = cli("status", "--env-file", str(second), "--prometheus", str(prom))
    assert s.returncode == 0, s
    samples = parse(prom)
    assert samples[("cypht_azure_secret_expiry_timestamp_seconds", str(first))] == expires
    assert samples[("cypht_azure_secret_expiry_timestamp_seconds", str(second))] == 0.0   # holds no secret
    assert samples[("cypht_azure_last_run_success", str(second))] == 0.0
    # no temporary file left; the lock stays (node-exporter reads only *.prom)
    assert sorted(p.name for p in prom.parent.iterdir()) == [".cypht-azure.prom.lock", "cypht-azure.prom"]


def test_prometheus_with_all_is_refused(cli: Cli, tmp_path: Path) -> None:
    r = cli("status", "--all", "--prometheus", str(tmp_path / "x.prom"))
    assert r.returncode == 2 and "--prometheus" in r.stderr
    assert not (tmp_path / "x.prom").exists()


def test_log_shows_the_last_entries(cli: Cli, home: Path) -> None:
    log_dir = home / ".state" / "cypht-azure"
    assert "No entries" in cli("log").stdout
    for n in range(4):
        audit.write(audit.Entry(command="rotate-secret", exit_code=8 if n == 3 else 0, env_file="/srv/.env",
                                app="app-1", added=[f"new-{n}"], removed=[f"old-{n}"],
                                hooks=[{"name": "10-reload", "ok": n != 3}]), folder=log_dir)
    r = cli("log", "-n", "2")
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert len(lines) == 2
    assert "rotate-secret  exit 8  app app-1  /srv/.env  added new-3  removed old-3  hooks 10-reload=FAILED" in lines[1]
    doc = cli("log", "--json").json
    assert doc["log_file"] == str(log_dir / "audit.log")
    assert [e["added"] for e in doc["entries"]] == [["new-0"], ["new-1"], ["new-2"], ["new-3"]]
    assert stat.S_IMODE((log_dir / "audit.log").stat().st_mode) == (0o640 if os.geteuid() == 0 else 0o600)
