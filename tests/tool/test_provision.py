"""`provision` end to end: the real CLI, azure-identity and msgraph-sdk against the emulator over HTTPS."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.tool.conftest import (
    Cli,
    cypht_apps,
    delete_app,
    graph_requests,
    token_requests,
    update_app,
    writes,
)
from tests.tool.php import load_with_symfony

URL = "https://mail.example.com"
REDIRECT = "https://mail.example.com/"
CYPHT_KEYS = [f"{p}_{k}" for p in ("OUTLOOK", "OFFICE365")
              for k in ("CLIENT_ID", "CLIENT_SECRET", "CLIENT_URI", "AUTH_URI", "TOKEN_URI", "REFRESH_URI")]


def provision(cli: Cli, env_file: Path, *extra: str) -> Any:
    return cli("provision", "--url", URL, "--env-file", str(env_file), "--json", *extra)


def read_env(path: Path) -> dict[str, str]:
    from cypht_azure import envdisk

    doc = envdisk.load(path)
    return {k: v for k in sorted(doc.keys()) if (v := doc.get(k)) is not None}


def test_fresh_provision_makes_one_token_request_and_three_graph_calls(cli: Cli, emulator: Any, env_file: Path) -> None:
    env_file.parent.mkdir()
    emulator.clear_log()
    r = provision(cli, env_file, "--no-verify")
    assert r.returncode == 0, r
    out = r.json
    for key in ("client_id", "object_id", "tenant_id", "redirect_uris", "secret_key_id", "secret_expires",
                "env_file", "keys_written", "changed"):
        assert key in out, key
    assert out["changed"] is True and out["created"] is True
    assert out["redirect_uris"] == [REDIRECT]
    assert out["tenant_id"] == emulator.info["tenant_id"]

    # Nothing names an app: create it at once (a create Graph refuses when a registration holds the
    # uniqueName, tests/tool/test_fast_create.py), then its service principal and the secret side by side.
    assert [m for m, _ in graph_requests(emulator)] == ["POST", "POST", "POST"]
    assert graph_requests(emulator)[0][1] == "/v1.0/applications"
    assert sorted(p.rsplit("/", 1)[-1] for _, p in graph_requests(emulator)[1:]) == ["addPassword", "servicePrincipals"]
    assert len(token_requests(emulator)) == 1

    values = read_env(env_file)
    for p in ("OUTLOOK", "OFFICE365"):
        assert values[f"{p}_CLIENT_ID"] == out["client_id"]
        assert values[f"{p}_CLIENT_URI"] == REDIRECT
        assert values[f"{p}_CLIENT_SECRET_ID"] == out["secret_key_id"]
        assert values[f"{p}_AUTH_URI"] == "https://login.live.com/oauth20_authorize.srf"
    assert os.stat(env_file).st_mode & 0o777 == 0o640  # the folder's group (the web server) reads it

    app = emulator.directory.get_application(app_id=out["client_id"])
    assert app["signInAudience"] == "AzureADandPersonalMicrosoftAccount"
    assert app["api"]["requestedAccessTokenVersion"] == 2
    assert app["web"]["redirectUris"] == [REDIRECT]
    assert "cypht-azure" in app["tags"]
    scopes = {a["id"] for a in app["requiredResourceAccess"][0]["resourceAccess"]}
    assert "652390e4-393a-48de-9484-05f9b1212954" in scopes  # IMAP.AccessAsUser.All
    assert [c["keyId"] for c in app["passwordCredentials"]] == [out["secret_key_id"]]


def test_secret_is_never_shown(cli: Cli, emulator: Any, env_file: Path) -> None:
    env_file.parent.mkdir()
    r = provision(cli, env_file, "--verbose")
    assert r.returncode == 0, r
    secret = read_env(env_file)["OUTLOOK_CLIENT_SECRET"]
    assert len(secret) >= 16
    assert secret not in r.stdout and secret not in r.stderr
    human = cli("provision", "--url", URL, "--env-file", str(env_file), "--verbose")
    assert secret not in human.stdout + human.stderr


def test_rerun_changes_nothing_in_one_graph_request(cli: Cli, emulator: Any, env_file: Path) -> None:
    env_file.parent.mkdir()
    first = provision(cli, env_file)
    assert first.returncode == 0, first
    before = env_file.read_bytes()
    inode = env_file.stat().st_ino
    emulator.clear_log()
    again = provision(cli, env_file)
    assert again.returncode == 0, again
    assert again.json["changed"] is False
    assert again.json["client_id"] == first.json["client_id"]
    assert again.json["secret_key_id"] == first.json["secret_key_id"]
    assert graph_requests(emulator) and len(graph_requests(emulator)) <= 2
    assert writes(emulator) == []
    assert env_file.read_bytes() == before and env_file.stat().st_ino == inode
    assert len(cypht_apps(emulator)) == 1
    app = emulator.directory.get_application(app_id=first.json["client_id"])
    assert len(app["passwordCredentials"]) == 1


def test_drift_is_repaired_in_one_patch_keeping_other_uris(cli: Cli, emulator: Any, env_file: Path) -> None:
    env_file.parent.mkdir()
    first = provision(cli, env_file)
    assert first.returncode == 0, first
    app = emulator.directory.get_application(app_id=first.json["client_id"])
    update_app(emulator, app["id"], {
        "web": {"redirectUris": ["https://other.example.com/"]},
        "signInAudience": "AzureADMyOrg",
    })
    emulator.clear_log()
    r = provision(cli, env_file)
    assert r.returncode == 0, r
    assert sorted(r.json["updated_fields"]) == ["signInAudience", "web"]
    assert [m for m, _ in writes(emulator)] == ["PATCH"]
    app = emulator.directory.get_application(app_id=first.json["client_id"])
    assert app["web"]["redirectUris"] == ["https://other.example.com/", REDIRECT]
    assert app["signInAudience"] == "AzureADandPersonalMicrosoftAccount"
    assert len(app["passwordCredentials"]) == 1  # the live secret in .env was kept


def test_written_env_is_read_by_cyphts_loader(cli: Cli, emulator: Any, env_file: Path) -> None:
    env_file.parent.mkdir()
    env_file.write_text("# Cypht\nAPP_NAME=Cypht\nexport OUTLOOK_CLIENT_URI='http://localhost/?page=home'\r\n")
    r = provision(cli, env_file)
    assert r.returncode == 0, r
    expected = read_env(env_file)
    loaded = load_with_symfony(env_file, [*CYPHT_KEYS, "APP_NAME"])
    for key in CYPHT_KEYS:
        assert loaded[key] == expected[key], key
    assert loaded["OUTLOOK_CLIENT_URI"] == REDIRECT
    assert loaded["APP_NAME"] == "Cypht"


def test_secret_works_after_the_replication_delay(cli: Cli, emulator: Any, env_file: Path) -> None:
    env_file.parent.mkdir()
    emulator.faults.secret_activation_delay(ms=2500)
    r = provision(cli, env_file)
    assert r.returncode == 0, r
    assert r.json["secret_verified"] is True
    # The first attempt comes before the secret is active and is refused: the tool waited and tried again.
    attempts = [t for t in token_requests(emulator) if t.client_id == r.json["client_id"]]
    assert len(attempts) >= 2 and attempts[0].status == 401


def test_dry_run_changes_nothing(cli: Cli, emulator: Any, env_file: Path) -> None:
    env_file.parent.mkdir()
    env_file.write_text("APP_NAME=Cypht\n")
    before = env_file.read_bytes()
    emulator.clear_log()
    r = provision(cli, env_file, "--dry-run")
    assert r.returncode == 0, r
    assert r.json["dry_run"] is True and r.json["changed"] is False
    assert "OUTLOOK_CLIENT_SECRET" in r.json["keys_written"]
    assert writes(emulator) == []
    assert env_file.read_bytes() == before
    assert cypht_apps(emulator) == []


def test_env_naming_a_foreign_app_is_refused(cli: Cli, emulator: Any, env_file: Path) -> None:
    foreign = emulator.directory.create_application(displayName="Someone's app")
    env_file.parent.mkdir()
    env_file.write_text(f"OUTLOOK_CLIENT_ID={foreign['appId']}\n")
    before = env_file.read_bytes()
    emulator.clear_log()
    r = provision(cli, env_file)
    assert r.returncode == 2, r
    assert "--app-id" in r.stderr and "did not create" in r.stderr
    assert writes(emulator) == []
    assert env_file.read_bytes() == before
    named = provision(cli, env_file, "--app-id", foreign["appId"], "--no-verify")
    assert named.returncode == 0, named
    assert named.json["client_id"] == foreign["appId"]


def test_deleted_app_in_env_is_reported(cli: Cli, emulator: Any, env_file: Path) -> None:
    env_file.parent.mkdir()
    first = provision(cli, env_file, "--no-verify")
    app = emulator.directory.get_application(app_id=first.json["client_id"])
    delete_app(emulator, app["id"])
    before = env_file.read_bytes()
    r = provision(cli, env_file)
    assert r.returncode == 5, r
    assert "does not exist" in r.stderr and "restore" in r.stderr.lower()
    assert env_file.read_bytes() == before


def test_sandbox_runs_the_readme_flow_end_to_end(cli: Cli, home: Path, tmp_path: Path) -> None:
    env = {k: "" for k in ("CYPHT_AZURE_AUTHORITY_HOST", "CYPHT_AZURE_GRAPH_URL", "CYPHT_AZURE_CA_FILE")}
    r = cli("provision", "--sandbox", "--url", URL, "--env-file", "./cypht.env", env=env)
    assert r.returncode == 0, r
    assert "SANDBOX" in r.stderr
    assert "Done." in r.stdout
    written = read_env(tmp_path / "cypht.env")
    assert written["OUTLOOK_CLIENT_URI"] == REDIRECT
    again = cli("provision", "--sandbox", "--url", URL, "--env-file", "./cypht.env", "--json", env=env)
    assert again.returncode == 0, again
    assert again.json["changed"] is False and again.json["sandbox"] is True
    assert again.json["client_id"] == written["OUTLOOK_CLIENT_ID"]
