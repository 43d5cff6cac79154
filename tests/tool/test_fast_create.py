"""A fresh provision creates without reading first, and never changes a registration that exists.

When nothing names an app, provision sends POST /applications with the uniqueName straight after
sign-in. Graph refuses that create (400) when another registration holds the uniqueName, so nothing
existing is changed; the run then reads the registration and plans against it. Each test asserts the
request sequence from the emulator's log and the registration's state before and after.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.tool.conftest import Cli, update_app
from tests.tool.test_issue11_defects import _foreign_registration_for_url
from tests.tool.test_provision import URL, provision

CREATE = ("POST", "/v1.0/applications")


def graph_log(emulator: Any) -> list[tuple[str, str, int]]:
    return [(e.method, e.path.split("?")[0], e.status) for e in emulator.request_log if e.kind == "graph"]


def registration(emulator: Any, app_id: str) -> dict[str, Any]:
    app = dict(emulator.directory.get_application(app_id=app_id))
    return {k: v for k, v in app.items() if not k.startswith("_")}


def test_fresh_provision_creates_first_then_service_principal_and_secret_together(
        cli: Cli, emulator: Any, env_file: Path) -> None:
    env_file.parent.mkdir()
    emulator.clear_log()
    r = provision(cli, env_file, "--no-verify")
    assert r.returncode == 0, r
    log = graph_log(emulator)
    assert log[0] == (*CREATE, 201), log  # no read before the create
    assert sorted(log[1:]) == sorted([("POST", "/v1.0/servicePrincipals", 201),
                                      ("POST", f"/v1.0/applications/{r.json['object_id']}/addPassword", 200)]), log
    assert [e.kind for e in emulator.request_log if e.kind in ("token", "graph")].count("token") == 1
    app = registration(emulator, r.json["client_id"])
    assert app["uniqueName"] and app["uniqueName"].startswith("cypht-azure-mail-example-com-")


def test_someone_elses_registration_for_the_url_is_not_touched(cli: Cli, emulator: Any, env_file: Path) -> None:
    env_file.parent.mkdir()
    theirs = _foreign_registration_for_url(emulator)
    before = registration(emulator, theirs["appId"])
    emulator.clear_log()
    r = provision(cli, env_file)
    assert r.returncode == 2, r
    assert "cypht-azure did not create it" in r.stderr
    log = graph_log(emulator)
    # The refused create, then the reads the plan needs (the registration, its service principal); no write.
    assert [(m, p.split("(")[0], s) for m, p, s in log] == [
        (*CREATE, 400), ("GET", "/v1.0/applications", 200), ("GET", "/v1.0/servicePrincipals", 404)], log
    assert "uniqueName=" in log[1][1]
    assert registration(emulator, theirs["appId"]) == before
    assert not env_file.exists()


def test_our_own_registration_for_the_url_is_read_and_planned_against(cli: Cli, emulator: Any, tmp_path: Path) -> None:
    """Another .env for the same URL: the create is refused, the registration is read; what the admin
    changed in it (name, notes, redirect URIs) is not overwritten as the upsert's 204 branch would."""
    first, second = tmp_path / "a" / ".env", tmp_path / "b" / ".env"
    first.parent.mkdir()
    second.parent.mkdir()
    made = provision(cli, first, "--no-verify")
    assert made.returncode == 0, made
    update_app(emulator, made.json["object_id"], {"displayName": "Renamed in the portal", "notes": "admin's note",
                                                   "web": {"redirectUris": ["https://mail.example.com/",
                                                                            "https://mail.example.com/extra/"]}})
    before = registration(emulator, made.json["client_id"])
    emulator.clear_log()
    r = provision(cli, second, "--no-verify")
    log = graph_log(emulator)
    assert log[0] == (*CREATE, 400), log
    assert log[1][0] == "GET" and "uniqueName=" in log[1][1], log
    assert not any(m == "PATCH" for m, _, _ in log), log
    after = registration(emulator, made.json["client_id"])
    for key in ("displayName", "notes", "web", "signInAudience", "requiredResourceAccess", "tags", "api"):
        assert after[key] == before[key], key
    assert r.returncode in (0, 1, 2), r  # what a second installation of one URL gets is the plan's decision


def test_a_registration_created_between_plan_and_create_is_not_touched(cli_env: dict[str, str], emulator: Any,
                                                                        env_file: Path, tmp_path: Path) -> None:
    """The create is held at the emulator; meanwhile someone registers the URL; the create is refused."""
    from cypht_azure.emulator.models import SYSTEM
    from cypht_azure.operations.core.provision import ProvisionRequest, prepare

    env_file.parent.mkdir()
    held = emulator.faults.add("POST", r"^/v1\.0/applications$", action="delay", delay=2.0, times=1)
    emulator.clear_log()
    proc = subprocess.Popen([sys.executable, "-m", "cypht_azure", "provision", "--url", URL, "--env-file",
                             str(env_file), "--json"], env=cli_env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while held.fired == 0:  # counted when the request arrives, before the delay
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    desired = prepare(ProvisionRequest(url=URL, env_file=env_file))
    theirs = emulator.directory.app_create(SYSTEM, {"displayName": "Registered meanwhile", "tags": ["someone-else"],
                                                    "web": {"redirectUris": ["https://other.example.com/"]}},
                                           unique_name=desired.unique_name)
    before = registration(emulator, theirs["appId"])
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 2, (out, err)
    assert "cypht-azure did not create it" in err
    log = graph_log(emulator)
    assert [(m, p.split("(")[0], s) for m, p, s in log] == [
        (*CREATE, 400), ("GET", "/v1.0/applications", 200), ("GET", "/v1.0/servicePrincipals", 404)], log
    assert registration(emulator, theirs["appId"]) == before
    assert not env_file.exists()


def test_our_deleted_registration_holding_the_name_is_restored(cli: Cli, emulator: Any, tmp_path: Path) -> None:
    """A registration deleted in the last 30 days keeps its uniqueName (Entra refuses a create with it):
    after `deprovision`, provision for the same URL brings cypht-azure's registration back."""
    first = tmp_path / "a" / ".env"
    first.parent.mkdir()
    made = provision(cli, first, "--no-verify")
    assert made.returncode == 0, made
    assert cli("deprovision", "--env-file", str(first), "--yes").returncode == 0
    emulator.clear_log()
    r = provision(cli, first, "--no-verify")  # the same installation, set up again
    assert r.returncode == 0, r
    assert r.json["client_id"] == made.json["client_id"]
    assert any("Restored the app registration" in n for n in r.json["actions"]), r.json["actions"]
    log = graph_log(emulator)
    assert [(m, p.split("(")[0], s) for m, p, s in log][:5] == [
        (*CREATE, 400), ("GET", "/v1.0/applications", 404), (*CREATE, 400),
        ("GET", "/v1.0/directory/deletedItems/graph.application", 200),
        ("POST", f"/v1.0/directory/deletedItems/{made.json['object_id']}/restore", 200)], log


def test_someone_elses_deleted_registration_holding_the_name_is_explained(cli: Cli, emulator: Any,
                                                                          env_file: Path) -> None:
    from cypht_azure.emulator.models import SYSTEM

    env_file.parent.mkdir()
    theirs = _foreign_registration_for_url(emulator)
    emulator.directory.app_delete(SYSTEM, ("id", theirs["id"]))
    emulator.clear_log()
    r = provision(cli, env_file, "--no-verify")
    assert r.returncode == 1, r
    assert "holds its uniqueName" in r.stderr and "Deleted applications" in r.stderr and theirs["appId"] in r.stderr
    log = graph_log(emulator)
    assert [(m, p.split("(")[0], s) for m, p, s in log] == [
        (*CREATE, 400), ("GET", "/v1.0/applications", 404), (*CREATE, 400),
        ("GET", "/v1.0/directory/deletedItems/graph.application", 200)], log
    assert not env_file.exists()
