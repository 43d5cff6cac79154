"""The rooms of unattended renewal, without a server: when a secret is due, recorded settings, the audit
log, webhook delivery (to a real loopback receiver)."""

from __future__ import annotations

import datetime as dt
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cypht_azure import envfile
from cypht_azure.errors import InputError
from cypht_azure.operations.core.secrets import when_due
from cypht_azure.operations.unattended import audit, notify, record
from cypht_azure.secret import Secret
from tests.tool.webhooks import WebhookReceiver

UTC = dt.timezone.utc
START = dt.datetime(2026, 1, 1, tzinfo=UTC)
DAY = dt.timedelta(days=1)


@pytest.mark.parametrize(("start", "end", "now", "rejected", "due", "reason"), [
    (START, START + 90 * DAY, START + 63 * DAY, False, True, "27 days of its 90 days lifetime left, less than a third"),
    (START, START + 90 * DAY, START + 54 * DAY, False, False, "36 days of its 90 days lifetime left"),
    (START, START + 90 * DAY, START + 60 * DAY, False, False, "30 days"),   # exactly a third: not yet
    (START, START + 90 * DAY, START + 91 * DAY, False, True, "expired on 2026-04-01"),
    (START, START + 90 * DAY, START + 1 * DAY, True, True, "refuses"),
    (START, None, START, False, True, "unknown"),
    (None, START + 90 * DAY, START, False, True, "start of the secret's lifetime is unknown"),
    (START, START + 1 * DAY, START + dt.timedelta(hours=17), False, True, "7.0 hours of its 24.0 hours"),
])
def test_when_due(start: dt.datetime | None, end: dt.datetime | None, now: dt.datetime, rejected: bool, due: bool,
                  reason: str) -> None:
    renewal = when_due(start, end, now, rejected=rejected)
    assert (renewal.due, reason in renewal.reason) == (due, True), renewal


def test_not_due_names_the_day_it_will_be() -> None:
    assert "on 2026-03-02 00:00 UTC" in when_due(START, START + 90 * DAY, START + 10 * DAY).reason


ENV = """\
OUTLOOK_CLIENT_ID=abc
CYPHT_AZURE_TENANT=contoso.onmicrosoft.com
CYPHT_AZURE_GRAPH_URL=https://graph.example.test/v1.0
CYPHT_AZURE_AUDIENCE=single-tenant
CYPHT_AZURE_NOTIFY="https://a.example/h1 https://b.example/h2"
"""


def test_settings_an_older_version_wrote_into_env_are_found_and_typed_for_the_record() -> None:
    found = record.legacy_settings(envfile.parse(ENV))
    assert sorted(found) == ["CYPHT_AZURE_AUDIENCE", "CYPHT_AZURE_GRAPH_URL", "CYPHT_AZURE_NOTIFY", "CYPHT_AZURE_TENANT"]
    assert record.from_legacy(found) == {
        "tenant": "contoso.onmicrosoft.com", "graph_url": "https://graph.example.test/v1.0",
        "audience": "AzureADMyOrg", "notify": ["https://a.example/h1", "https://b.example/h2"],
    }
    with pytest.raises(InputError, match="cloud must be one of"):
        record.from_legacy({"CYPHT_AZURE_CLOUD": "mars"})


def test_recorded_settings_sit_under_the_command_line() -> None:
    rec = record.Record("/srv/.env", {"tenant": "contoso.onmicrosoft.com", "graph_url": "https://graph.example.test/v1.0",
                                      "notify": ["https://a.example/h1", "https://b.example/h2"]})
    given = {"tenant": "fabrikam.example", "graph_url": None, "cloud": "public", "notify": [], "auth": "auto"}
    layered = record.layer(given, {"tenant"}, rec)
    assert layered == {"tenant": "fabrikam.example", "graph_url": "https://graph.example.test/v1.0",
                       "cloud": "public", "notify": ["https://a.example/h1", "https://b.example/h2"], "auth": "auto"}


def test_only_what_the_user_set_is_recorded_and_never_a_credential() -> None:
    given = {"tenant": "contoso.onmicrosoft.com", "cloud": "usgov", "authority_host": "https://login.example.test",
             "graph_url": None, "audience": "AzureADMyOrg", "notify": ["https://c.example/x"],
             "auth": "environment", "ca_file": "ca.pem", "deploy_hook": ["systemctl reload php-fpm"]}
    kept = record.relevant(given, {"tenant", "cloud", "authority_host", "notify", "auth", "ca_file", "deploy_hook"})
    assert kept == {"tenant": "contoso.onmicrosoft.com", "cloud": "usgov",
                    "authority_host": "https://login.example.test", "notify": ["https://c.example/x"],
                    "ca_file": os.path.abspath("ca.pem"), "deploy_hook": ["systemctl reload php-fpm"]}
    assert not any(w in k for k in record.SETTINGS for w in ("client_secret", "client_id", "password", "certificate"))
    assert "auth" not in record.SETTINGS


def test_records_are_found_by_path_written_private_and_read_back(tmp_path: Path) -> None:
    folder = tmp_path / "installations"
    env_file = tmp_path / "www" / "cypht" / ".env"
    assert record.load(env_file, folder) is None
    record.remember(env_file, settings={"tenant": "contoso.example"}, installation_id="0123456789abcdef",
                    folder=folder)
    path = record.path_for(env_file, folder)
    assert path.name.startswith("tmp-") or path.name.endswith(".json")
    assert (stat.S_IMODE(path.stat().st_mode), stat.S_IMODE(folder.stat().st_mode)) == (0o600, 0o700)
    rec = record.load(env_file, folder)
    assert rec is not None and rec.settings == {"tenant": "contoso.example"} and rec.env_file == str(env_file)
    assert record.name_for(env_file) != record.name_for(tmp_path / "www" / "cypht2" / ".env")
    path.chmod(0o620)
    with pytest.raises(record.UnsafeRecord, match="mode 0620"):
        record.load(env_file, folder)
    path.chmod(0o600)
    path.rename(tmp_path / "real.json")
    path.symlink_to(tmp_path / "real.json")
    with pytest.raises(record.UnsafeRecord, match="symbolic link"):
        record.load(env_file, folder)


# The audit log

def test_audit_lines_rotation_modes_and_last_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "log"
    monkeypatch.setattr(audit, "MAX_BYTES", 2000)
    for n in range(40):
        audit.write(audit.Entry(command="rotate-secret", exit_code=n % 2, env_file=str(tmp_path / ".env"),
                                app="app", added=[f"k{n}"]), folder=folder)
    names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert names == ["audit.log", "audit.log.1", "audit.log.2", "audit.log.3", "last-runs.json"]
    assert all(p.stat().st_size <= 2000 for p in folder.glob("audit.log*"))
    expected_mode = 0o640 if os.geteuid() == 0 else 0o600
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.glob("audit.log*")} == {expected_mode}
    last = audit.read(5, folder=folder)
    assert [e["added"] for e in last] == [["k35"], ["k36"], ["k37"], ["k38"], ["k39"]]
    assert len(audit.read(1000, folder=folder)) < 40  # the oldest were rotated away
    assert audit.last_run(tmp_path / ".env", folder=folder) | {"time": "-"} == {
        "time": "-", "command": "rotate-secret", "exit_code": 1}


def test_audit_refuses_a_line_with_a_secret(tmp_path: Path) -> None:
    secret = Secret("V3ry~secret.value_0123456789abcdef")
    entry = audit.Entry(command="rotate-secret", exit_code=1, error=f"bad {secret.reveal()}")
    with pytest.raises(audit.SecretInLogLine):
        audit.write(entry, secrets=[secret], folder=tmp_path)
    assert not (tmp_path / "audit.log").exists()
    assert "<hidden>" in audit.render(audit.Entry(command="x", exit_code=0, detail={"s": secret}))


# Webhooks

@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    yield r
    r.stop()


def test_webhook_gets_each_event_after_a_retry(receiver: WebhookReceiver) -> None:
    receiver.statuses[:] = [503]
    now = dt.datetime.now(UTC)
    expires = (now + 5 * DAY).strftime("%Y-%m-%dT%H:%M:%SZ")
    events = notify.events_for(command="rotate-secret", env_file="/srv/.env", exit_code=1, app="app-id",
                               rotated=False, expires=expires, message="Graph said no", now=now)
    assert [e.event for e in events] == ["failed", "expiring"]
    deliveries = notify.send([receiver.url], events, deadline=10)
    assert all(d.ok for d in deliveries), deliveries
    assert sorted(d.attempts for d in deliveries) in ([1, 2], [2, 1])
    assert [b["event"] for b in receiver.bodies] == ["failed", "expiring"]
    assert receiver.bodies[0] | {"time": "-", "host": "-"} == {
        "source": "cypht-azure", "event": "failed", "command": "rotate-secret", "env_file": "/srv/.env",
        "exit_code": 1, "app": "app-id", "expires": expires, "message": "Graph said no", "host": "-", "time": "-"}
    assert all("token-in-path" not in d.url for d in deliveries)


def test_rotation_event_and_no_expiring_event_after_a_rotation() -> None:
    now = dt.datetime.now(UTC)
    events = notify.events_for(command="rotate-secret", env_file="/e", exit_code=0, app="a", rotated=True,
                               expires=(now + 2 * DAY).isoformat(), message=None, now=now)
    assert [e.event for e in events] == ["rotated"]
    assert notify.events_for(command="rotate-secret", env_file="/e", exit_code=0, app="a", rotated=False,
                             expires=(now + 20 * DAY).isoformat(), message=None, now=now) == []


def test_an_unreachable_receiver_costs_at_most_the_deadline() -> None:
    event = notify.Event("rotated", "rotate-secret", "/e", 0)
    started = time.monotonic()
    # a blackhole address: connections hang rather than fail
    deliveries = notify.send(["https://10.255.255.1:9/hook", "http://127.0.0.1:9/hook"], [event], deadline=2)
    assert time.monotonic() - started < 3.5
    assert [d.ok for d in deliveries] == [False, False]


def test_a_refusing_receiver_is_not_asked_again(receiver: WebhookReceiver) -> None:
    receiver.statuses[:] = [400, 400, 400]
    deliveries = notify.send([receiver.url], [notify.Event("rotated", "x", "/e", 0)], deadline=5)
    assert [(d.ok, d.attempts, d.detail) for d in deliveries] == [(False, 1, "HTTP 400")]


@pytest.mark.parametrize("url", ["ftp://x.example/", "hooks.example.com/x", "https:///nohost", ""])
def test_bad_notify_urls_are_refused(url: str) -> None:
    with pytest.raises(InputError, match="not an https"):
        notify.validate_urls([url])


@pytest.mark.parametrize(("url", "allowed"), [
    ("https://alerts.example.com/hook", True), ("http://127.0.0.1:8080/hook", True), ("http://[::1]/hook", True),
    ("http://localhost/hook", True), ("http://alerts.example.com/hook", False), ("http://10.0.0.1/hook", False),
    ("http://127.0.0.1.example.com/hook", False),
])
def test_plain_http_only_to_loopback(url: str, allowed: bool) -> None:
    if allowed:
        assert notify.validate_urls([url]) == [url]
    else:
        with pytest.raises(InputError, match="plain http"):
            notify.validate_urls([url])
    # and send() refuses it too, whoever handed it over
    deliveries = notify.send([url], [notify.Event("rotated", "x", "/e", 0)], deadline=1)
    assert allowed or [(d.ok, d.attempts) for d in deliveries] == [(False, 0)]


# After a run: audit line, last run, events — from the --json outcome

def test_finish_logs_changes_records_noops_and_notifies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        receiver: WebhookReceiver) -> None:
    from cypht_azure.operations.unattended import runlog

    monkeypatch.setenv("CYPHT_AZURE_LOG_DIR", str(tmp_path / "log"))
    env_file = tmp_path / ".env"
    now = dt.datetime.now(UTC)
    outcome = {"client_id": "app-1", "new_key_id": "k-new", "expires": "2027-01-01T00:00:00Z",
               "removed_key_ids": ["k-old"], "changed": True,
               "deploy_hooks": [{"name": "10-reload", "ok": True, "exit_code": 0}]}
    done = runlog.finish("rotate-secret", env_file, outcome=outcome, exit_code=0, notify_urls=[receiver.url], now=now)
    assert done.audited and done.warnings == []
    [line] = audit.read(10, folder=tmp_path / "log")
    assert line | {"time": "-"} == {"time": "-", "command": "rotate-secret", "exit_code": 0, "env_file": str(env_file),
                                    "app": "app-1", "added": ["k-new"], "removed": ["k-old"],
                                    "hooks": [{"name": "10-reload", "ok": True, "exit_code": 0}], "changed": True}
    assert [b["event"] for b in receiver.bodies] == ["rotated"]

    soon = (now + 3 * DAY).strftime("%Y-%m-%dT%H:%M:%SZ")
    noop = runlog.finish("rotate-secret", env_file, outcome={"client_id": "app-1", "previous_expires": soon,
                                                             "changed": False},
                         exit_code=0, notify_urls=[receiver.url], now=now)
    assert not noop.audited and len(audit.read(10, folder=tmp_path / "log")) == 1
    assert audit.last_run(env_file, folder=tmp_path / "log")["exit_code"] == 0
    assert [b["event"] for b in receiver.bodies] == ["rotated", "expiring"]

    failed = runlog.finish("rotate-secret", env_file, outcome=None, exit_code=3, error="could not sign in",
                           app="app-1", notify_urls=[receiver.url], now=now)
    assert failed.audited and audit.read(1, folder=tmp_path / "log")[0]["error"] == "could not sign in"
    assert receiver.bodies[-1]["event"] == "failed" and receiver.bodies[-1]["exit_code"] == 3
    assert runlog.finish("rotate-secret", env_file, outcome=outcome, exit_code=0, dry_run=True,
                         notify_urls=[receiver.url]).audited is False
    assert len(receiver.bodies) == 3
