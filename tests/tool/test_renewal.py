"""Set and forget, through the real CLI and the emulator: --when-due, deploy hooks (and their failure),
recorded settings, webhooks and the audit log."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cypht_azure.operations.unattended import audit
from tests.tool.conftest import Cli, cypht_apps, record_of
from tests.tool.test_lifecycle import app_of, rotate, secret_works
from tests.tool.test_provision import provision, read_env
from tests.tool.webhooks import WebhookReceiver

DUMP_HOOK = """#!{python}
import json, os, sys
env_file = os.environ["CYPHT_AZURE_ENV_FILE"]
secret = next(l.split("=", 1)[1] for l in open(env_file).read().splitlines() if l.startswith("OUTLOOK_CLIENT_SECRET="))
runs = {runs!r}
with open(runs, "a") as out:
    out.write(json.dumps({{"env": dict(os.environ), "secret_in_file": secret.strip("'\\"")}}) + "\\n")
if not os.path.exists({gate!r}):
    print("cypht is not reloaded yet", file=sys.stderr)
    sys.exit(4)
"""


@pytest.fixture
def provisioned(cli: Cli, env_file: Path) -> dict[str, Any]:
    env_file.parent.mkdir()
    r = provision(cli, env_file, "--secret-lifetime", "100d")
    assert r.returncode == 0, r
    return dict(r.json)


@pytest.fixture
def hooks_dir(home: Path) -> Path:
    folder = home / ".config" / "cypht-azure" / "deploy-hooks.d"   # CYPHT_AZURE_HOOKS_DIR of the tool tests
    folder.mkdir(parents=True)
    return folder


def install_dump_hook(folder: Path, tmp_path: Path, *, gate_open: bool) -> tuple[Path, Path]:
    runs, gate = tmp_path / "hook-runs.jsonl", tmp_path / "cypht-reloaded"
    if gate_open:
        gate.touch()
    hook = folder / "50-reload-cypht"
    hook.write_text(DUMP_HOOK.format(python=os.sys.executable, runs=str(runs), gate=str(gate)))  # type: ignore[attr-defined]
    hook.chmod(0o755)
    (folder / "50-reload-cypht~").write_text("#!/bin/sh\nexit 9\n")   # an editor's backup: never run
    (folder / "50-reload-cypht~").chmod(0o755)
    return runs, gate


def hook_runs(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def age_secret(emulator: Any, object_id: str, key_id: str, *, left: float, lifetime_days: float = 100) -> None:
    """Move a secret's lifetime so that `left` (a fraction) of it remains."""
    now = dt.datetime.now(dt.timezone.utc)
    start = now - dt.timedelta(days=lifetime_days * (1 - left))
    end = now + dt.timedelta(days=lifetime_days * left)
    directory = emulator.directory
    with directory.store.write():
        for cred in directory.data["applications"][object_id.lower()]["passwordCredentials"]:
            if cred["keyId"].lower() == key_id.lower():
                cred["startDateTime"] = start.strftime("%Y-%m-%dT%H:%M:%SZ")
                cred["endDateTime"] = end.strftime("%Y-%m-%dT%H:%M:%SZ")
        directory.store.mark_dirty()


def test_when_due_rotates_at_30_percent_left_and_not_at_40(cli: Cli, emulator: Any, env_file: Path,
                                                            provisioned: dict[str, Any]) -> None:
    key = provisioned["secret_key_id"]
    age_secret(emulator, provisioned["object_id"], key, left=0.40)
    r = rotate(cli, env_file, "--when-due")
    assert r.returncode == 0, r
    assert r.json["skipped"]["reason"].startswith(f"the secret in {env_file} ({key}) has 40 days of its")
    assert r.json["new_key_id"] is None and read_env(env_file)["OUTLOOK_CLIENT_SECRET_ID"] == key

    age_secret(emulator, provisioned["object_id"], key, left=0.30)
    r = rotate(cli, env_file, "--when-due")
    assert r.returncode == 0, r
    assert r.json["skipped"] is None and r.json["new_key_id"] and r.json["removed_key_ids"] == [key]
    assert read_env(env_file)["OUTLOOK_CLIENT_SECRET_ID"] == r.json["new_key_id"]


def test_hook_sees_the_variables_and_the_new_secret_in_the_file(cli: Cli, emulator: Any, env_file: Path,
                                                                  provisioned: dict[str, Any], hooks_dir: Path,
                                                                  tmp_path: Path) -> None:
    runs, _ = install_dump_hook(hooks_dir, tmp_path, gate_open=True)
    old_key = provisioned["secret_key_id"]
    marker = tmp_path / "flag-hook-ran"
    r = rotate(cli, env_file, "--deploy-hook", f"touch {marker}")   # AZURE_CLIENT_SECRET is in its environment
    assert r.returncode == 0, r
    new_key = r.json["new_key_id"]
    [seen] = hook_runs(runs)
    new_secret = read_env(env_file)["OUTLOOK_CLIENT_SECRET"]
    assert seen["secret_in_file"] == new_secret
    assert {k: v for k, v in seen["env"].items() if k.startswith("CYPHT_AZURE_")} == {
        "CYPHT_AZURE_ENV_FILE": str(env_file), "CYPHT_AZURE_CLIENT_ID": provisioned["client_id"],
        "CYPHT_AZURE_NEW_KEY_ID": new_key, "CYPHT_AZURE_OLD_KEY_IDS": old_key,
        "CYPHT_AZURE_EXPIRES": r.json["expires"],
    }
    assert new_secret not in json.dumps(seen["env"])
    assert not any(k.startswith("AZURE_") for k in seen["env"])   # the admin's sign-in stays out
    assert marker.exists()   # the flag hook ran first, then the folder's (the backup never)
    assert [h["name"] for h in r.json["deploy_hooks"]] == [f"touch {marker}", "50-reload-cypht"]
    assert r.json["removed_key_ids"] == [old_key]
    assert "CYPHT_AZURE_DEPLOY_PENDING" not in read_env(env_file)


def test_failing_hook_keeps_the_old_secret_exits_8_and_the_next_run_retries_then_removes(
        cli: Cli, emulator: Any, env_file: Path, provisioned: dict[str, Any], hooks_dir: Path, tmp_path: Path,
        home: Path) -> None:
    runs, gate = install_dump_hook(hooks_dir, tmp_path, gate_open=False)
    client_id, old_key = provisioned["client_id"], provisioned["secret_key_id"]
    old_secret = read_env(env_file)["OUTLOOK_CLIENT_SECRET"]

    r = rotate(cli, env_file)
    assert r.returncode == 8, r
    new_key = r.json["new_key_id"]
    assert "50-reload-cypht: exit code 4" in r.stderr and "cypht is not reloaded yet" in r.stderr
    assert "the old secret was kept" in r.stderr
    env = read_env(env_file)
    assert env["OUTLOOK_CLIENT_SECRET_ID"] == new_key and env["CYPHT_AZURE_DEPLOY_PENDING"] == new_key
    keys = {c["keyId"] for c in app_of(emulator, client_id)["passwordCredentials"]}
    assert keys == {old_key, new_key}
    assert secret_works(emulator, client_id, old_secret)
    assert r.json["removed_key_ids"] == [] and r.json["deploy_hooks"][0]["exit_code"] == 4

    # not due, and still failing: the hook is tried again, nothing removed, still 8
    again = rotate(cli, env_file, "--when-due")
    assert again.returncode == 8, again
    assert len(hook_runs(runs)) == 2
    assert {c["keyId"] for c in app_of(emulator, client_id)["passwordCredentials"]} == {old_key, new_key}

    gate.touch()   # the admin fixed what the hook needed
    fixed = rotate(cli, env_file, "--when-due")
    assert fixed.returncode == 0, fixed
    assert len(hook_runs(runs)) == 3 and hook_runs(runs)[-1]["env"]["CYPHT_AZURE_NEW_KEY_ID"] == new_key
    assert fixed.json["removed_key_ids"] == [old_key] and fixed.json["new_key_id"] is None
    assert {c["keyId"] for c in app_of(emulator, client_id)["passwordCredentials"]} == {new_key}
    assert "CYPHT_AZURE_DEPLOY_PENDING" not in read_env(env_file)

    log = audit.read(10, folder=home / ".state" / "cypht-azure")
    assert [(e["command"], e["exit_code"], e.get("added", []), e.get("removed", [])) for e in log[-3:]] == [
        ("rotate-secret", 8, [new_key], []), ("rotate-secret", 8, [], []), ("rotate-secret", 0, [], [old_key])]
    text = (home / ".state" / "cypht-azure" / "audit.log").read_text()
    assert old_secret not in text and read_env(env_file)["OUTLOOK_CLIENT_SECRET"] not in text
    assert "cypht is not reloaded yet" not in text   # a hook's output is shown, never logged


def test_dry_run_lists_hooks_and_runs_them_only_when_asked(cli: Cli, emulator: Any, env_file: Path,
                                                            provisioned: dict[str, Any], hooks_dir: Path,
                                                            tmp_path: Path) -> None:
    runs, _ = install_dump_hook(hooks_dir, tmp_path, gate_open=True)
    before = env_file.read_text()
    r = cli("rotate-secret", "--env-file", str(env_file), "--dry-run")
    assert r.returncode == 0, r
    assert "- Run the deploy hooks (50-reload-cypht)" in r.stdout
    assert hook_runs(runs) == []
    r = rotate(cli, env_file, "--dry-run", "--run-deploy-hooks")
    assert r.returncode == 0, r
    [seen] = hook_runs(runs)
    assert seen["env"]["CYPHT_AZURE_NEW_KEY_ID"] == provisioned["secret_key_id"]
    assert env_file.read_text() == before and r.json["changed"] is False


def test_a_hook_that_cannot_run_is_refused_before_anything_changes(cli: Cli, emulator: Any, env_file: Path,
                                                                    provisioned: dict[str, Any]) -> None:
    before = env_file.read_text()
    count = len(app_of(emulator, provisioned["client_id"])["passwordCredentials"])
    r = cli("rotate-secret", "--env-file", str(env_file), "--deploy-hook", "no-such-reload-tool --now")
    assert r.returncode == 2, r
    assert "'no-such-reload-tool' is not an executable on PATH" in r.stderr
    assert env_file.read_text() == before
    assert len(app_of(emulator, provisioned["client_id"])["passwordCredentials"]) == count


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    yield r
    r.stop()


def test_settings_are_recorded_and_webhooks_get_each_event_without_the_secret(
        cli: Cli, emulator: Any, env_file: Path, provisioned: dict[str, Any], receiver: WebhookReceiver,
        cli_env: dict[str, str], home: Path) -> None:
    # rotate once with --notify and the endpoints given in the environment: all kept in the operator's
    # installation record, none in .env (which keeps Cypht's keys and the installation ID only)
    r = rotate(cli, env_file, "--notify", receiver.url)
    assert r.returncode == 0, r
    env = read_env(env_file)
    assert [k for k in env if k.startswith("CYPHT_AZURE_")] == ["CYPHT_AZURE_INSTALLATION_ID"]
    kept = record_of(home, env_file)
    assert kept["env_file"] == str(env_file) and kept["installation_id"] == env["CYPHT_AZURE_INSTALLATION_ID"]
    assert kept["settings"] == {
        "notify": [receiver.url], "graph_url": cli_env["CYPHT_AZURE_GRAPH_URL"],
        "authority_host": cli_env["CYPHT_AZURE_AUTHORITY_HOST"], "ca_file": cli_env["CYPHT_AZURE_CA_FILE"],
        "tenant": cli_env["AZURE_TENANT_ID"], "secret_lifetime": "100d"}  # (given to provision)
    assert cli_env["AZURE_CLIENT_SECRET"] not in json.dumps(kept)

    # the cron job: only the sign-in in the environment, everything else from the record
    cron_env = {k: "" for k in ("CYPHT_AZURE_GRAPH_URL", "CYPHT_AZURE_AUTHORITY_HOST", "CYPHT_AZURE_CA_FILE")}
    alone = cli("rotate-secret", "--env-file", str(env_file), "--json", env=cron_env)
    assert alone.returncode == 0, alone
    # a failure: the app is gone
    directory = emulator.directory
    with directory.store.write():
        directory.data["applications"].pop(provisioned["object_id"].lower())
        directory.store.mark_dirty()
    gone = cli("rotate-secret", "--env-file", str(env_file), env=cron_env)
    assert gone.returncode == 5, gone

    events = [(b["event"], b["exit_code"]) for b in receiver.bodies]
    assert events == [("rotated", 0), ("rotated", 0), ("failed", 5)]
    assert all(b["app"] == provisioned["client_id"] and b["env_file"] == str(env_file) for b in receiver.bodies)
    secrets_seen = {read_env(env_file)["OUTLOOK_CLIENT_SECRET"], r.json["new_key_id"] and env["OUTLOOK_CLIENT_SECRET"]}
    assert not any(s in json.dumps(receiver.bodies) for s in secrets_seen if s)
    assert cypht_apps(emulator) == []


def test_provision_runs_hooks_after_a_new_secret_only_and_remembers_the_audience(
        cli: Cli, emulator: Any, env_file: Path, tmp_path: Path, home: Path) -> None:
    env_file.parent.mkdir()
    runs = tmp_path / "runs"
    hook = f'echo "$CYPHT_AZURE_NEW_KEY_ID" >> {runs}'
    first = provision(cli, env_file, "--audience", "single-tenant", "--deploy-hook", hook)
    assert first.returncode == 0, first
    assert runs.read_text().split() == [first.json["secret_key_id"]]
    assert record_of(home, env_file)["settings"]["audience"] == "single-tenant"
    assert "CYPHT_AZURE_AUDIENCE" not in read_env(env_file)
    # again, without --audience: the recorded one is used (nothing to change), and no new secret: no hook
    again = provision(cli, env_file, "--deploy-hook", hook)
    assert again.returncode == 0, again
    assert again.json["changed"] is False and again.json["sign_in_audience"] == "AzureADMyOrg"
    assert runs.read_text().split() == [first.json["secret_key_id"]]
    # an audience given now wins, and is recorded
    other = provision(cli, env_file, "--audience", "any", "--dry-run")
    assert other.returncode == 0 and "signInAudience" in " ".join(other.json["actions"])


def test_status_finds_the_app_with_the_recorded_endpoints(cli: Cli, emulator: Any, env_file: Path,
                                                          provisioned: dict[str, Any]) -> None:
    assert rotate(cli, env_file).returncode == 0   # records the endpoints given in the environment
    cron_env = {k: "" for k in ("CYPHT_AZURE_GRAPH_URL", "CYPHT_AZURE_AUTHORITY_HOST", "CYPHT_AZURE_CA_FILE")}
    r = cli("status", "--env-file", str(env_file), "--json", env=cron_env)
    assert r.returncode == 0, r
    assert r.json["app"]["client_id"] == provisioned["client_id"]
