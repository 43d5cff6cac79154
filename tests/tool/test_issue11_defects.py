"""The Graph-side and ownership defects of issue 11, each through the real CLI against the emulator.

Every test here failed before the plan -> apply rework; the docstring of each names the defect.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.tool.conftest import Cli, cypht_apps, graph_requests, remove_secret
from tests.tool.test_provision import URL, provision, read_env


def app_of(emulator: Any, client_id: str) -> dict[str, Any]:
    app = emulator.directory.get_application(app_id=client_id)
    assert app is not None
    return dict(app)


def key_ids(emulator: Any, client_id: str) -> set[str]:
    return {str(c["keyId"]).lower() for c in app_of(emulator, client_id).get("passwordCredentials") or []}


def provisioned(cli: Cli, env_file: Path) -> dict[str, Any]:
    env_file.parent.mkdir(exist_ok=True)
    r = provision(cli, env_file)
    assert r.returncode == 0, r
    return dict(r.json)


# ---- 6: the upsert's 204 branch -------------------------------------------------------------------


def _foreign_registration_for_url(emulator: Any) -> dict[str, Any]:
    """A registration that already has the uniqueName provision derives from URL, made by someone else."""
    from cypht_azure.emulator.models import SYSTEM
    from cypht_azure.operations.core.provision import ProvisionRequest, prepare

    desired = prepare(ProvisionRequest(url=URL, env_file=Path(".env")))
    body = {"displayName": "Made in the portal", "signInAudience": desired.body["signInAudience"],
            "api": {"requestedAccessTokenVersion": 2},
            "web": {"redirectUris": ["https://other.example.com/"]}, "tags": ["someone-else"]}
    return dict(emulator.directory.app_create(SYSTEM, body, unique_name=desired.unique_name))


def test_6_existing_registration_for_the_url_is_refused_not_overwritten(cli: Cli, emulator: Any,
                                                                         env_file: Path) -> None:
    """Defect 6: provision used to PATCH the whole body over a registration that existed for the URL."""
    env_file.parent.mkdir()
    theirs = _foreign_registration_for_url(emulator)
    r = provision(cli, env_file)
    assert r.returncode == 2, r
    assert "cypht-azure did not create it" in r.stderr and f"--app-id {theirs['appId']}" in r.stderr
    after = app_of(emulator, theirs["appId"])
    assert after["web"]["redirectUris"] == ["https://other.example.com/"] and after["tags"] == ["someone-else"]
    assert not env_file.exists()


def test_6_with_app_id_the_existing_registration_is_merged(cli: Cli, emulator: Any, env_file: Path) -> None:
    env_file.parent.mkdir()
    theirs = _foreign_registration_for_url(emulator)
    r = provision(cli, env_file, "--app-id", theirs["appId"])
    assert r.returncode == 0, r
    after = app_of(emulator, theirs["appId"])
    assert after["web"]["redirectUris"] == ["https://other.example.com/", f"{URL}/"]
    assert set(after["tags"]) == {"someone-else", "cypht-azure"}
    assert after["displayName"] == "Made in the portal"
    assert r.json["updated_fields"] and "displayName" not in r.json["updated_fields"]
    assert [s["step"] for s in r.json["steps"]][:1] == ["PatchRegistration"]


# ---- 7: work done, answer a 5xx -------------------------------------------------------------------


def _meanwhile(emulator: Any, rule: Any, action: Any) -> threading.Thread:
    """Once `rule` has fired (Graph answered 500 without doing the work), do the work behind the tool's
    back before its retry arrives: from the tool's side that is exactly "done, but the answer was 500"."""
    def run() -> None:
        deadline = time.monotonic() + 60
        while rule.fired == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        if rule.fired:
            action()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_7_delete_answered_500_after_the_work_counts_as_done(cli: Cli, emulator: Any, env_file: Path) -> None:
    from cypht_azure.emulator.models import SYSTEM

    app = provisioned(cli, env_file)
    rule = emulator.faults.add("DELETE", r"/v1\.0/applications/.*", 500, times=1)
    waiter = _meanwhile(emulator, rule, lambda: emulator.directory.app_delete(SYSTEM, ("id", app["object_id"])))
    r = cli("deprovision", "--env-file", str(env_file), "--yes", "--json")
    waiter.join(5)
    assert rule.fired == 1
    assert r.returncode == 0, r
    assert r.json["deleted"] is True and "OUTLOOK_CLIENT_ID" not in read_env(env_file)


def test_7_remove_password_answered_500_after_the_work_counts_as_done(cli: Cli, emulator: Any,
                                                                      env_file: Path) -> None:
    app = provisioned(cli, env_file)
    old = app["secret_key_id"]
    rule = emulator.faults.add("POST", r".*/removePassword", 500, times=1)
    waiter = _meanwhile(emulator, rule, lambda: remove_secret(emulator, app["object_id"], old))
    r = cli("rotate-secret", "--env-file", str(env_file), "--json")
    waiter.join(5)
    assert rule.fired == 1
    assert r.returncode == 0, r
    assert key_ids(emulator, app["client_id"]) == {r.json["new_key_id"]}
    (removal,) = [s for s in r.json["steps"] if s["step"] == "RemoveSecret"]
    assert removal["status"] == "done" and removal["detail"] == "already gone"


def test_7_restore_answered_500_after_the_work_counts_as_done(cli: Cli, emulator: Any, env_file: Path) -> None:
    from cypht_azure.emulator.models import SYSTEM

    app = provisioned(cli, env_file)
    assert cli("deprovision", "--env-file", str(env_file), "--yes").returncode == 0
    rule = emulator.faults.add("POST", r"/v1\.0/directory/deletedItems/.*/restore", 500, times=1)
    waiter = _meanwhile(emulator, rule, lambda: emulator.directory.deleted_restore(SYSTEM, app["object_id"]))
    r = cli("restore", "--app-id", app["client_id"], "--json")
    waiter.join(5)
    assert rule.fired == 1
    assert r.returncode == 0, r
    assert r.json["client_id"] == app["client_id"]
    assert emulator.directory.get_application(app_id=app["client_id"]) is not None


# ---- 10: app IDs are GUIDs before they reach an OData filter; client IDs compared case-insensitively


def test_10_client_id_from_env_is_checked_before_any_graph_call(cli: Cli, emulator: Any, env_file: Path) -> None:
    env_file.parent.mkdir()
    env_file.write_text("OUTLOOK_CLIENT_ID=x' or appId ne 'y\nOFFICE365_CLIENT_ID=x' or appId ne 'y\n")
    emulator.clear_log()
    for args in (["rotate-secret"], ["deprovision", "--yes"], ["status"], ["provision", "--url", URL]):
        r = cli(*args, "--env-file", str(env_file))
        assert r.returncode == 2, r
        assert "is not an application (client) ID" in r.stderr, r
    assert graph_requests(emulator) == []


def test_10_app_id_option_is_checked_before_any_graph_call(cli: Cli, emulator: Any, env_file: Path) -> None:
    env_file.parent.mkdir()
    emulator.clear_log()
    r = cli("rotate-secret", "--env-file", str(env_file), "--app-id", "1' or '1' eq '1")
    assert r.returncode == 2 and "is not an application (client) ID" in r.stderr, r
    assert graph_requests(emulator) == []


def test_10_upper_case_client_ids_in_env_are_the_same_app(cli: Cli, emulator: Any, env_file: Path) -> None:
    app = provisioned(cli, env_file)
    text = env_file.read_text().replace(app["client_id"], app["client_id"].upper())
    env_file.write_text(text)
    again = provision(cli, env_file)
    assert again.returncode == 0, again
    assert again.json["changed"] is False and key_ids(emulator, app["client_id"]) == {app["secret_key_id"]}
    rotated = cli("rotate-secret", "--env-file", str(env_file), "--json")
    assert rotated.returncode == 0, rotated
    assert rotated.json["previous_key_id"] == app["secret_key_id"]
    assert key_ids(emulator, app["client_id"]) == {rotated.json["new_key_id"]}


# ---- 12: rotate-secret --app-id X on a .env that names Y ------------------------------------------


def test_12_rotate_with_another_app_id_is_refused_unless_switching(cli: Cli, emulator: Any, env_file: Path,
                                                                   tmp_path: Path) -> None:
    mine = provisioned(cli, env_file)
    other_env = tmp_path / "other" / ".env"
    other_env.parent.mkdir()
    other = cli("provision", "--url", "https://other.example.com", "--env-file", str(other_env), "--json")
    assert other.returncode == 0, other
    before = env_file.read_bytes()
    emulator.clear_log()

    refused = cli("rotate-secret", "--env-file", str(env_file), "--app-id", other.json["client_id"])
    assert refused.returncode == 2, refused
    assert "--switch-app" in refused.stderr and mine["client_id"] in refused.stderr
    assert env_file.read_bytes() == before and graph_requests(emulator) == []

    plan = cli("rotate-secret", "--env-file", str(env_file), "--app-id", other.json["client_id"], "--switch-app",
               "--dry-run", "--json")
    assert plan.returncode == 0, plan
    (write,) = [s for s in plan.json["steps"] if s["step"] == "WriteEnv"]
    assert write["switch_from"] == mine["client_id"] and "OUTLOOK_CLIENT_ID" in write["keys"]
    assert env_file.read_bytes() == before

    switched = cli("rotate-secret", "--env-file", str(env_file), "--app-id", other.json["client_id"],
                   "--switch-app", "--json")
    assert switched.returncode == 0, switched
    assert read_env(env_file)["OUTLOOK_CLIENT_ID"] == other.json["client_id"]
    # The app .env named before keeps its secret: it is not this rotation's to remove.
    assert key_ids(emulator, mine["client_id"]) == {mine["secret_key_id"]}


# ---- 13: Ctrl-C while waiting for the new secret ----------------------------------------------------


def test_13_ctrl_c_during_the_wait_undoes_the_new_secret_at_once(cli_env: dict[str, str], cli: Cli, emulator: Any,
                                                                 env_file: Path, tmp_path: Path) -> None:
    app = provisioned(cli, env_file)
    before = env_file.read_bytes()
    emulator.faults.secret_activation_delay(ms=600_000)  # the new secret is never accepted in time
    emulator.clear_log()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cypht_azure", "rotate-secret", "--env-file", str(env_file), "--verify-timeout", "100"],
        env=cli_env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until it is trying the new secret
            if any(e.kind == "token" and e.client_id == app["client_id"] for e in emulator.request_log):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the rotation never started to check its new secret")
        time.sleep(0.5)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    emulator.faults.secret_activation_delay(None)
    assert proc.returncode == 130, (out, err)
    assert took < 3, f"Ctrl-C took {took:.1f} s to stop the run"
    assert env_file.read_bytes() == before
    assert key_ids(emulator, app["client_id"]) == {app["secret_key_id"]}, "the new secret must be removed again"
    assert "Undone: Add a client secret" in err and ".env was not changed" in err, err


# ---- 8: the lock and errors after Graph changed ----------------------------------------------------


def test_8_a_run_waits_for_a_long_one_holding_the_lock(cli_env: dict[str, str], cli: Cli, emulator: Any,
                                                       env_file: Path, tmp_path: Path) -> None:
    """The old 30 s lock wait was shorter than one run's own secret check (up to 120 s)."""
    import fcntl
    import os

    provisioned(cli, env_file)
    fd = os.open(env_file.parent, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as a long rotation in another process would
    threading.Timer(33, lambda: os.close(fd)).start()
    started = time.monotonic()
    r = cli("rotate-secret", "--env-file", str(env_file), "--json", timeout=120)
    assert r.returncode == 0, r
    assert time.monotonic() - started > 32


def test_8_env_file_error_after_graph_changed_says_what_changed(cli: Cli, emulator: Any, env_file: Path,
                                                                tmp_path: Path) -> None:
    from cypht_azure import envdisk

    app = provisioned(cli, env_file)
    emulator.faults.secret_activation_delay(ms=2500)

    def edit_meanwhile() -> None:  # another program edits an owned key while the new secret is checked
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(e.kind == "token" and e.client_id == app["client_id"] for e in emulator.request_log):
                doc = envdisk.load(env_file)
                env_file.write_text(doc.updated({"OUTLOOK_CLIENT_SECRET_ID": "00000000-0000-0000-0000-000000000001"})
                                    .render())
                return
            time.sleep(0.02)

    emulator.clear_log()
    editor = threading.Thread(target=edit_meanwhile, daemon=True)
    editor.start()
    r = cli("rotate-secret", "--env-file", str(env_file), "--json")
    editor.join(5)
    emulator.faults.secret_activation_delay(None)
    assert r.returncode == 1, r
    message = r.json["error"]["message"]
    assert "Undone: Add a client secret" in message and ".env was not changed" in message, message
    assert key_ids(emulator, app["client_id"]) == {app["secret_key_id"]}
    assert len(cypht_apps(emulator)) == 1


# ---- 5: secret ownership that survives host renames and moves; copies reported ------------------------


def _in_host(cli_env: dict[str, str], host: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The CLI in a UTS namespace of its own whose host name is `host` (as after a rename, or in a container)."""
    return subprocess.run(["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', host,
                           sys.executable, "-m", "cypht_azure", *args],
                          env=cli_env, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_5_rotation_after_a_host_rename_removes_the_secret_env_held(cli_env: dict[str, str], emulator: Any,
                                                                    env_file: Path, tmp_path: Path) -> None:
    import json

    env_file.parent.mkdir()
    made = _in_host(cli_env, "mail-old", "provision", "--url", URL, "--env-file", str(env_file), "--json",
                    cwd=tmp_path)
    assert made.returncode == 0, made
    app = json.loads(made.stdout)
    assert read_env(env_file)["CYPHT_AZURE_INSTALLATION_ID"]
    rotated = _in_host(cli_env, "mail-new", "rotate-secret", "--env-file", str(env_file), "--json", cwd=tmp_path)
    assert rotated.returncode == 0, rotated
    out = json.loads(rotated.stdout)
    assert out["removed_key_ids"] == [app["secret_key_id"]]
    assert key_ids(emulator, app["client_id"]) == {out["new_key_id"]}
    status = _in_host(cli_env, "mail-newer", "status", "--env-file", str(env_file), "--json", cwd=tmp_path)
    assert status.returncode == 0, status
    assert [s["created_by"] for s in json.loads(status.stdout)["secrets"]] == ["cypht-azure (this .env)"]


def test_5_rotation_after_the_folder_moved_removes_the_secret_env_held(cli: Cli, emulator: Any, env_file: Path,
                                                                       tmp_path: Path) -> None:
    app = provisioned(cli, env_file)
    moved = tmp_path / "moved"
    env_file.parent.rename(moved)
    r = cli("rotate-secret", "--env-file", str(moved / ".env"), "--json")
    assert r.returncode == 0, r
    assert r.json["removed_key_ids"] == [app["secret_key_id"]]
    assert key_ids(emulator, app["client_id"]) == {r.json["new_key_id"]}


def test_5_a_copied_env_is_reported_not_fought_over(cli: Cli, emulator: Any, env_file: Path, tmp_path: Path) -> None:
    import shutil

    app = provisioned(cli, env_file)
    copy = tmp_path / "copy" / ".env"
    copy.parent.mkdir()
    shutil.copy2(env_file, copy)
    first = cli("rotate-secret", "--env-file", str(env_file), "--json")
    assert first.returncode == 0, first
    mine = first.json["new_key_id"]
    second = cli("rotate-secret", "--env-file", str(copy), "--json")
    assert second.returncode == 0, second
    assert any("a copy of this file" in a and mine in a for a in second.json["actions"]), second.json["actions"]
    assert mine not in second.json["removed_key_ids"]
    assert key_ids(emulator, app["client_id"]) == {mine, second.json["new_key_id"]}
    status = cli("status", "--env-file", str(env_file), "--json")
    assert "env-copied" in {f["code"] for f in status.json["findings"]}, status
