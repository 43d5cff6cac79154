"""rotate-secret, status and deprovision end to end against the emulator."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from tests.tool.conftest import (
    Cli,
    delete_app,
    graph_requests,
    remove_secret,
    token_requests,
    update_app,
    writes,
)
from tests.tool.php import load_with_symfony
from tests.tool.test_provision import provision, read_env


@pytest.fixture
def provisioned(cli: Cli, env_file: Path) -> dict[str, Any]:
    env_file.parent.mkdir()
    r = provision(cli, env_file, "--secret-lifetime", "20d")
    assert r.returncode == 0, r
    return dict(r.json)


def app_of(emulator: Any, client_id: str) -> dict[str, Any]:
    app = emulator.directory.get_application(app_id=client_id)
    assert app is not None
    return dict(app)


def secret_works(emulator: Any, client_id: str, secret: str) -> bool:
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import ClientSecretCredential

    info = emulator.info
    cred = ClientSecretCredential(info["tenant_id"], client_id, secret, authority=info["authority_host"],
                                  disable_instance_discovery=True, connection_verify=info["ca_file"], retry_total=0)
    try:
        cred.get_token("https://graph.microsoft.com/.default")
        return True
    except ClientAuthenticationError:
        return False  # only a token counts (AADSTS7000229, no service principal, proves nothing)


def rotate(cli: Cli, env_file: Path, *extra: str) -> Any:
    return cli("rotate-secret", "--env-file", str(env_file), "--json", *extra)


def test_rotation_end_to_end(cli: Cli, emulator: Any, env_file: Path, provisioned: dict[str, Any]) -> None:
    client_id = provisioned["client_id"]
    old_secret = read_env(env_file)["OUTLOOK_CLIENT_SECRET"]
    emulator.clear_log()
    r = rotate(cli, env_file)
    assert r.returncode == 0, r
    out = r.json
    assert out["new_key_id"] and out["new_key_id"] != provisioned["secret_key_id"]
    assert out["removed_key_ids"] == [provisioned["secret_key_id"]]
    assert out["skipped"] is None and out["secret_verified"] is True
    values = read_env(env_file)
    new_secret = values["OUTLOOK_CLIENT_SECRET"]
    assert new_secret != old_secret and values["OFFICE365_CLIENT_SECRET"] == new_secret
    assert values["OUTLOOK_CLIENT_SECRET_ID"] == out["new_key_id"]
    assert new_secret not in r.stdout + r.stderr
    loaded = load_with_symfony(env_file, ["OUTLOOK_CLIENT_SECRET", "OFFICE365_CLIENT_SECRET"])
    assert loaded == {"OUTLOOK_CLIENT_SECRET": new_secret, "OFFICE365_CLIENT_SECRET": new_secret}
    assert secret_works(emulator, client_id, new_secret)
    assert not secret_works(emulator, client_id, old_secret)
    # order: add, (verify), then remove the superseded one
    methods = [p.rsplit("/", 1)[-1] for m, p in writes(emulator)]
    assert methods == ["addPassword", "removePassword"]
    assert [c["keyId"] for c in app_of(emulator, client_id)["passwordCredentials"]] == [out["new_key_id"]]


def test_keep_previous(cli: Cli, emulator: Any, env_file: Path, provisioned: dict[str, Any]) -> None:
    r = rotate(cli, env_file, "--keep-previous")
    assert r.returncode == 0, r
    assert r.json["removed_key_ids"] == [] and r.json["kept_key_ids"] == [provisioned["secret_key_id"]]
    keys = {c["keyId"] for c in app_of(emulator, provisioned["client_id"])["passwordCredentials"]}
    assert keys == {provisioned["secret_key_id"], r.json["new_key_id"]}


def test_if_expiring_within_both_ways(cli: Cli, emulator: Any, env_file: Path, provisioned: dict[str, Any]) -> None:
    before = env_file.read_bytes()
    emulator.clear_log()
    skip = rotate(cli, env_file, "--if-expiring-within", "10d")
    assert skip.returncode == 0, skip
    assert skip.json["skipped"]["reason"] and skip.json["new_key_id"] is None
    assert len(graph_requests(emulator)) <= 2 and writes(emulator) == []
    assert env_file.read_bytes() == before
    due = rotate(cli, env_file, "--if-expiring-within", "30d")
    assert due.returncode == 0, due
    assert due.json["skipped"] is None and due.json["new_key_id"]


def test_foreign_secret_is_left_alone(cli: Cli, emulator: Any, env_file: Path, provisioned: dict[str, Any]) -> None:
    app = app_of(emulator, provisioned["client_id"])
    update_app(emulator, app["id"], {"signInAudience": "AzureADMyOrg", "api": {"requestedAccessTokenVersion": 2}})
    foreign_key, _ = emulator.directory.add_password(app["id"], display_name="ops team")
    r = rotate(cli, env_file)
    assert r.returncode == 0, r
    assert foreign_key.lower() in r.json["foreign_key_ids"]
    assert foreign_key.lower() not in r.json["removed_key_ids"]
    keys = {c["keyId"].lower() for c in app_of(emulator, provisioned["client_id"])["passwordCredentials"]}
    assert keys == {foreign_key.lower(), r.json["new_key_id"]}


def test_orphan_from_a_killed_run_is_removed(cli: Cli, emulator: Any, env_file: Path, provisioned: dict[str, Any]) -> None:
    """A run killed after addPassword and before the .env write leaves a secret nobody holds."""
    app = app_of(emulator, provisioned["client_id"])
    held_name = app["passwordCredentials"][0]["displayName"]  # made for this .env
    orphan_key, _ = emulator.directory.add_password(app["id"], display_name=held_name)
    r = rotate(cli, env_file, "--if-expiring-within", "10d")  # nothing due, but the orphan goes
    assert r.returncode == 0, r
    assert r.json["skipped"] and r.json["removed_key_ids"] == [orphan_key.lower()]
    keys = [c["keyId"] for c in app_of(emulator, provisioned["client_id"])["passwordCredentials"]]
    assert keys == [provisioned["secret_key_id"]]


def test_two_secret_limit(cli: Cli, emulator: Any, env_file: Path, provisioned: dict[str, Any]) -> None:
    """Personal-account apps hold at most 2 secrets; rotation frees the tool's own unused slot first."""
    app = app_of(emulator, provisioned["client_id"])
    held_name = app["passwordCredentials"][0]["displayName"]
    emulator.directory.add_password(app["id"], display_name=held_name)  # an orphan fills slot 2
    for _ in range(3):
        r = rotate(cli, env_file)
        assert r.returncode == 0, r
        assert len(app_of(emulator, provisioned["client_id"])["passwordCredentials"]) == 1


def test_two_secret_limit_with_a_foreign_secret_is_explained(
    cli: Cli, emulator: Any, env_file: Path, provisioned: dict[str, Any]
) -> None:
    app = app_of(emulator, provisioned["client_id"])
    emulator.directory.add_password(app["id"], display_name="someone else")
    before = env_file.read_bytes()
    r = rotate(cli, env_file)
    assert r.returncode == 1, r
    assert "2 client secrets" in r.stderr and "Certificates & secrets" in r.stderr
    assert env_file.read_bytes() == before
    assert len(app_of(emulator, provisioned["client_id"])["passwordCredentials"]) == 2


def test_rotation_rides_out_replication_delay_and_throttling(
    cli: Cli, emulator: Any, env_file: Path, provisioned: dict[str, Any]
) -> None:
    emulator.faults.secret_activation_delay(ms=2000)
    emulator.faults.add(method="POST", path=r"/addPassword$", status=429, retry_after=1, times=1)
    emulator.clear_log()
    r = rotate(cli, env_file)
    assert r.returncode == 0, r
    adds = [e for e in emulator.request_log if e.kind == "graph" and e.path.endswith("/addPassword")]
    assert [e.status for e in adds] == [429, 200]
    new_secret = read_env(env_file)["OUTLOOK_CLIENT_SECRET"]
    attempts = [t for t in token_requests(emulator) if t.client_id == provisioned["client_id"]]
    assert len(attempts) >= 2 and attempts[0].status == 401
    assert secret_works(emulator, provisioned["client_id"], new_secret)


def status(cli: Cli, env_file: Path, *extra: str) -> Any:
    return cli("status", "--env-file", str(env_file), "--json", *extra)


def test_status_healthy_and_fail_within(cli: Cli, emulator: Any, env_file: Path, provisioned: dict[str, Any]) -> None:
    emulator.clear_log()
    r = status(cli, env_file, "--verify-secret")
    assert r.returncode == 0, r
    doc = r.json
    assert doc["app"]["client_id"] == provisioned["client_id"]
    assert doc["secret_verified"] is True
    assert [s["in_env"] for s in doc["secrets"]] == [["outlook", "office365"]]
    assert doc["secrets"][0]["created_by"] == "cypht-azure (this .env)"
    assert len(graph_requests(emulator)) == 1
    assert [f["code"] for f in doc["findings"]] == ["secret-expiring"]  # 20-day secret, 30-day warning
    assert status(cli, env_file, "--fail-within", "10d").returncode == 0
    failing = status(cli, env_file, "--fail-within", "30d")
    assert failing.returncode == 6 and failing.json["failing"] is True


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        ("uri", "redirect-mismatch"),
        ("remove-secret", "secret-not-in-app"),
        ("query-personal", "redirect-query-personal"),
        ("different-apps", "providers-differ"),
        ("missing-secret", "missing-keys"),
        ("deleted", "app-deleted"),
        ("expired", "secret-expired"),
    ],
)
def test_status_findings(cli: Cli, emulator: Any, env_file: Path, provisioned: dict[str, Any], mutate: str, code: str) -> None:
    from cypht_azure import envdisk

    client_id = provisioned["client_id"]
    app = app_of(emulator, client_id)
    doc = envdisk.load(env_file)
    if mutate == "uri":
        envdisk.write_atomic(env_file, doc.updated({"OUTLOOK_CLIENT_URI": "https://elsewhere.example/"}).render())
    elif mutate == "remove-secret":
        remove_secret(emulator, app["id"], provisioned["secret_key_id"])
    elif mutate == "query-personal":
        update_app(emulator, app["id"], {"web": {"redirectUris": ["https://mail.example.com/", "https://mail.example.com/?page=home"]}}, validate=False)
    elif mutate == "different-apps":
        other = emulator.directory.create_application(displayName="other", tags=["cypht-azure"])
        envdisk.write_atomic(env_file, doc.updated({"OFFICE365_CLIENT_ID": other["appId"]}).render())
    elif mutate == "missing-secret":
        envdisk.write_atomic(env_file, doc.updated({"OFFICE365_CLIENT_SECRET": None}).render())
    elif mutate == "deleted":
        delete_app(emulator, app["id"])
    elif mutate == "expired":
        past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
        key, secret = emulator.directory.add_password(app["id"], display_name="cypht-azure old", start=past - dt.timedelta(days=30), end=past)
        envdisk.write_atomic(env_file, doc.updated({"OUTLOOK_CLIENT_SECRET": secret, "OUTLOOK_CLIENT_SECRET_ID": key.lower()}).render())
    r = status(cli, env_file, "--fail-within", "1d")
    assert r.returncode == 6, r
    codes = [f["code"] for f in r.json["findings"]]
    assert code in codes, codes
    finding = next(f for f in r.json["findings"] if f["code"] == code)
    assert finding["severity"] == "error" and finding["fix"]


def test_status_all_pages_with_few_requests(cli: Cli, emulator: Any) -> None:
    emulator.directory.bulk_seed_applications(2100, tag="cypht-azure")
    emulator.clear_log()
    r = cli("status", "--all", "--json")
    assert r.returncode == 0, r
    apps = r.json["apps"]
    assert len(apps) == 2100
    days = [a["days_left"] if a["days_left"] is not None else -1e9 for a in apps]
    assert days == sorted(days)
    gets = graph_requests(emulator)
    assert len(gets) == 3, gets  # 999 + 999 + 102
    assert all("%24select" in p or "$select" in p for _, p in gets[:1])


def test_deprovision_needs_yes_without_a_terminal(cli: Cli, emulator: Any, env_file: Path, provisioned: dict[str, Any]) -> None:
    before = env_file.read_bytes()
    r = cli("deprovision", "--env-file", str(env_file))
    assert r.returncode == 7, r
    assert "--yes" in r.stderr
    assert env_file.read_bytes() == before
    assert app_of(emulator, provisioned["client_id"])


def test_deprovision_then_restore(cli: Cli, emulator: Any, env_file: Path, provisioned: dict[str, Any]) -> None:
    env_file.write_text("# mine\nAPP_NAME=Cypht\n" + env_file.read_text())
    dry = cli("deprovision", "--env-file", str(env_file), "--dry-run", "--json")
    assert dry.returncode == 0 and dry.json["changed"] is False, dry
    r = cli("deprovision", "--env-file", str(env_file), "--yes", "--json")
    assert r.returncode == 0, r
    assert r.json["deleted"] is True and r.json["purged"] is False
    assert emulator.directory.get_application(app_id=provisioned["client_id"]) is None
    text = env_file.read_text()
    assert text.startswith("# mine\nAPP_NAME=Cypht\n")
    values = read_env(env_file)
    assert "OUTLOOK_CLIENT_ID" not in values and "OUTLOOK_CLIENT_SECRET" not in values
    assert "OUTLOOK_AUTH_URI" not in values  # the endpoint keys provision appended go too
    restored = cli("restore", "--app-id", provisioned["client_id"], "--json")
    assert restored.returncode == 0, restored
    assert emulator.directory.get_application(app_id=provisioned["client_id"]) is not None


def test_deprovision_purge(cli: Cli, emulator: Any, env_file: Path, provisioned: dict[str, Any]) -> None:
    r = cli("deprovision", "--env-file", str(env_file), "--yes", "--purge", "--json")
    assert r.returncode == 0, r
    assert r.json["purged"] is True
    assert all(d.get("appId") != provisioned["client_id"] for d in emulator.directory.deleted_items())
    again = cli("restore", "--app-id", provisioned["client_id"])
    assert again.returncode == 5, again


def test_json_documents_are_single_objects(cli: Cli, env_file: Path, provisioned: dict[str, Any]) -> None:
    for args in (["status"], ["rotate-secret", "--if-expiring-within", "1d"]):
        r = cli(*args, "--env-file", str(env_file), "--json")
        assert r.returncode == 0, r
        assert isinstance(json.loads(r.stdout), dict)
