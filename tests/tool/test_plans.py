"""Plans as tables: request, `.env` text and the registration's JSON -> the steps, no server.

`plan_provision`, `plan_rotate` and `plan_deprovision` are pure, so each row states a situation
and the exact step list (type and the fields that matter) the command would apply.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from cypht_azure import cypht, envfile
from cypht_azure.errors import InputError, OperationFailed
from cypht_azure.operations.core.deprovision import DeprovisionRequest, plan_deprovision
from cypht_azure.operations.core.provision import ProvisionRequest, plan_provision, prepare
from cypht_azure.operations.core.rotate import RotateRequest, plan_rotate
from cypht_azure.operations.core.secrets import new_secret_name
from cypht_azure.operations.core.steps import (
    AddSecret,
    CreateRegistration,
    CreateServicePrincipal,
    DeleteRegistration,
    DeleteServicePrincipal,
    Fill,
    PatchRegistration,
    Plan,
    RemoveSecret,
    VerifySecret,
    WriteEnv,
)

URL = "https://mail.example.com"
ENV = Path("/srv/cypht/.env")
NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)
APP_ID = "11111111-2222-3333-4444-555555555555"
OTHER_ID = "99999999-2222-3333-4444-555555555555"
HELD, OLD, ORPHAN, FOREIGN = (f"{n}0000000-0000-0000-0000-000000000000" for n in "abcd")


def secret(key: str, *, ours: bool = True, days: int = 200) -> dict[str, Any]:
    name = new_secret_name(NOW - dt.timedelta(days=1), ENV) if ours else "made by hand"
    return {"keyId": key, "displayName": name, "endDateTime": (NOW + dt.timedelta(days=days)).isoformat()}


def app(*secrets: dict[str, Any], tagged: bool = True, **over: Any) -> dict[str, Any]:
    body = json.loads(json.dumps(prepare(ProvisionRequest(url=URL, env_file=ENV)).body))
    if not tagged:
        body["tags"] = []
    return {"id": "obj", "appId": APP_ID, **body, "passwordCredentials": list(secrets), **over}


def env_text(client_id: str | None = APP_ID, key: str | None = HELD) -> str:
    if client_id is None:
        return "APP_NAME=Cypht\n"
    lines = ["APP_NAME=Cypht"]
    for provider in cypht.PROVIDERS:
        k = cypht.provider_keys(provider)
        lines += [f"{k.client_id}={client_id}", f"{k.client_secret}=abc8Q~secretvalue", f"{k.client_uri}={URL}/"]
        lines += [f"{k.secret_id}={key}"] if key else []
        lines += [f"{k.endpoint(n)}={v}" for n, v in cypht.DEFAULT_ENDPOINTS.items()]
    return "\n".join(lines) + "\n"


def shape(plan: Plan) -> list[str]:
    """Step type, plus the commit mark: what the rows compare."""
    return [s.name + ("*" if s.commit else "") for s in plan.steps]


PROVISION = [
    ("fresh: create, add, write (commit), verify", {}, env_text(None), None,
     ["CreateRegistration", "CreateServicePrincipal", "AddSecret", "WriteEnv*", "VerifySecret"]),
    ("fresh without --verify", {"verify": False}, env_text(None), None,
     ["CreateRegistration", "CreateServicePrincipal", "AddSecret", "WriteEnv*"]),
    ("all in place: nothing to do", {}, env_text(), app(secret(HELD)), []),
    ("drift repaired by a merge patch only", {}, env_text(), app(secret(HELD), signInAudience="AzureADMyOrg"),
     ["PatchRegistration"]),
    ("held secret gone from the app: a new one", {}, env_text(), app(secret(OLD, days=-1)),
     ["AddSecret", "WriteEnv*", "RemoveSecret", "VerifySecret"]),
    ("orphan of an interrupted run removed after nothing to commit", {}, env_text(),
     app(secret(HELD), secret(ORPHAN)), ["RemoveSecret"]),
    ("at the 2-secret limit: room made before the add", {}, env_text(client_id=APP_ID, key=None),
     app(secret(ORPHAN), secret(FOREIGN, ours=False)), ["RemoveSecret", "AddSecret", "WriteEnv*", "VerifySecret"]),
    ("untagged but named by --app-id: tagged by the patch", {"app_id": APP_ID}, env_text(None),
     app(tagged=False), ["PatchRegistration", "AddSecret", "WriteEnv*", "VerifySecret"]),
]


@pytest.mark.parametrize(("request_kw", "env", "registration", "steps"),
                         [pytest.param(*row[1:], id=row[0]) for row in PROVISION])
def test_plan_provision(request_kw: dict[str, Any], env: str, registration: dict[str, Any] | None,
                        steps: list[str]) -> None:
    request = ProvisionRequest(url=URL, env_file=ENV, **request_kw)
    plan = plan_provision(request, envfile.parse(env), registration, NOW)
    assert shape(plan) == steps
    assert len([s for s in plan.steps if s.commit]) <= 1


def test_plan_provision_fresh_in_detail() -> None:
    plan = plan_provision(ProvisionRequest(url=URL, env_file=ENV), envfile.parse(env_text(None)), None, NOW)
    create, sp, add, write, verify = plan.steps
    assert isinstance(create, CreateRegistration) and create.unique_name.startswith("cypht-azure-mail-example-com")
    assert isinstance(sp, CreateServicePrincipal) and sp.client_id is Fill.CLIENT_ID and not sp.commit
    assert isinstance(add, AddSecret) and add.end == "2027-12-01T12:00:00Z" and add.lifetime == dt.timedelta(days=365)
    assert isinstance(write, WriteEnv) and write.commit and write.switch_from is None
    assert write.values["OUTLOOK_CLIENT_ID"] is Fill.CLIENT_ID and write.values["OFFICE365_CLIENT_SECRET"] is Fill.SECRET
    assert write.values["OUTLOOK_CLIENT_URI"] == f"{URL}/"
    assert isinstance(verify, VerifySecret) and verify.timeout == 120.0


def test_plan_provision_repairs_a_missing_service_principal_alone() -> None:
    plan = plan_provision(ProvisionRequest(url=URL, env_file=ENV), envfile.parse(env_text()), app(secret(HELD)), NOW,
                          has_service_principal=False)
    assert shape(plan) == ["CreateServicePrincipal"]
    assert plan.steps[0] == CreateServicePrincipal(APP_ID)


def test_plan_provision_patch_names_only_what_drifted() -> None:
    plan = plan_provision(ProvisionRequest(url=URL, env_file=ENV), envfile.parse(env_text()),
                          app(secret(HELD), signInAudience="AzureADMyOrg", web={"redirectUris": ["https://x.example/"]}),
                          NOW)
    (patch,) = plan.steps
    assert isinstance(patch, PatchRegistration)
    assert patch.fields == ("signInAudience", "web")
    assert patch.patch["web"]["redirectUris"] == ["https://x.example/", f"{URL}/"]  # kept what was there


def test_plan_provision_shows_a_client_id_switch() -> None:
    plan = plan_provision(ProvisionRequest(url=URL, env_file=ENV, app_id=APP_ID),
                          envfile.parse(env_text(client_id=OTHER_ID)), app(), NOW)
    (write,) = plan.of(WriteEnv)
    assert write.switch_from == OTHER_ID and "switching its client ID from" in write.summary()


@pytest.mark.parametrize(("env", "fragment"), [
    (env_text(None), "A registration for this URL already exists"),
    (env_text(), "that cypht-azure did not create"),
])
def test_plan_provision_refuses_a_foreign_registration(env: str, fragment: str) -> None:
    with pytest.raises(InputError, match=fragment):
        plan_provision(ProvisionRequest(url=URL, env_file=ENV), envfile.parse(env), app(tagged=False), NOW)


def test_plan_provision_refuses_a_full_app_it_cannot_make_room_in() -> None:
    full = app(secret(FOREIGN, ours=False), secret(OLD, ours=False))
    with pytest.raises(OperationFailed, match="2 client secrets"):
        plan_provision(ProvisionRequest(url=URL, env_file=ENV), envfile.parse(env_text(None)), full, NOW)


ROTATE = [
    ("rotation: add, verify, write (commit), remove superseded", {}, app(secret(HELD)),
     ["AddSecret", "VerifySecret", "WriteEnv*", "RemoveSecret"]),
    ("--keep-previous keeps the old one", {"keep_previous": True}, app(secret(HELD)),
     ["AddSecret", "VerifySecret", "WriteEnv*"]),
    ("not due: nothing", {"if_expiring_within": dt.timedelta(days=30)}, app(secret(HELD)), []),
    ("not due, an orphan: only the cleanup", {"if_expiring_within": dt.timedelta(days=30)},
     app(secret(HELD), secret(ORPHAN)), ["RemoveSecret"]),
    ("due", {"if_expiring_within": dt.timedelta(days=30)}, app(secret(HELD, days=10)),
     ["AddSecret", "VerifySecret", "WriteEnv*", "RemoveSecret"]),
    ("at the limit: room first; a foreign secret is never removed", {},
     app(secret(HELD), secret(FOREIGN, ours=False)), []),
    ("at the limit with an orphan", {}, app(secret(HELD), secret(ORPHAN)),
     ["RemoveSecret", "AddSecret", "VerifySecret", "WriteEnv*", "RemoveSecret"]),
]


@pytest.mark.parametrize(("request_kw", "registration", "steps"),
                         [pytest.param(*row[1:], id=row[0]) for row in ROTATE])
def test_plan_rotate(request_kw: dict[str, Any], registration: dict[str, Any], steps: list[str]) -> None:
    request = RotateRequest(env_file=ENV, **request_kw)
    if not steps and len(registration["passwordCredentials"]) == 2:
        with pytest.raises(OperationFailed, match="2 client secrets"):
            plan_rotate(request, envfile.parse(env_text()), registration, NOW)
        return
    plan = plan_rotate(request, envfile.parse(env_text()), registration, NOW)
    assert shape(plan) == steps


def test_plan_rotate_in_detail() -> None:
    plan = plan_rotate(RotateRequest(env_file=ENV), envfile.parse(env_text()), app(secret(HELD)), NOW)
    _, _, write, remove = plan.steps
    assert isinstance(write, WriteEnv) and write.keys == (
        "OUTLOOK_CLIENT_SECRET", "OUTLOOK_CLIENT_SECRET_ID", "OFFICE365_CLIENT_SECRET", "OFFICE365_CLIENT_SECRET_ID",
        "CYPHT_AZURE_INSTALLATION_ID")  # recorded with the first write that lacks it
    assert isinstance(remove, RemoveSecret) and remove.key_id == HELD and "superseded" in remove.reason
    # No secret in a plan: the JSON of every step is safe to print.
    assert "8Q~" not in json.dumps([s.to_json() for s in plan.steps])


DEPROVISION = [
    ("delete (commit), its service principal, then the keys", {}, False,
     ["DeleteRegistration*", "DeleteServicePrincipal", "WriteEnv"]),
    ("--purge", {"purge": True}, False, ["DeleteRegistration*", "DeleteServicePrincipal", "PurgeRegistration", "WriteEnv"]),
    ("already deleted: a service principal left behind, the keys", {}, True, ["DeleteServicePrincipal", "WriteEnv"]),
]


@pytest.mark.parametrize(("request_kw", "already", "steps"), [pytest.param(*r[1:], id=r[0]) for r in DEPROVISION])
def test_plan_deprovision(request_kw: dict[str, Any], already: bool, steps: list[str]) -> None:
    plan = plan_deprovision(DeprovisionRequest(env_file=ENV, **request_kw), envfile.parse(env_text()), app(), already)
    assert shape(plan) == steps
    write = plan.of(WriteEnv)[0]
    # no block of cypht-azure's own in this file: every line was filled in place, and stays, empty
    assert all(v == "" for v in write.values.values()) and "OUTLOOK_AUTH_URI" not in write.values
    assert isinstance(plan.steps[0], (DeleteRegistration, DeleteServicePrincipal))



# ---- who owns a secret (issue 11, defect 5) ------------------------------------------------------------


def named(key: str, installation: str, after: str = "-", days: int = 200, at: Path = ENV) -> dict[str, Any]:
    return {"keyId": key, "endDateTime": (NOW + dt.timedelta(days=days)).isoformat(),
            "displayName": new_secret_name(NOW, at, installation=installation, after=after)}


COPY = Path("/srv/copy-of-cypht/.env")  # another live file with the same installation ID


IID = "0123456789abcdef"


def with_id(text: str) -> str:
    return text + f"CYPHT_AZURE_INSTALLATION_ID={IID}\n"


def test_held_secret_made_on_another_host_is_superseded_by_a_rotation() -> None:
    legacy = {"keyId": HELD, "displayName": "cypht-azure 2026-01-01 oldhost:3fa9c2d1",
              "endDateTime": (NOW + dt.timedelta(days=20)).isoformat()}
    plan = plan_rotate(RotateRequest(env_file=ENV), envfile.parse(env_text()), app(legacy), NOW)
    assert [s.key_id for s in plan.of(RemoveSecret)] == [HELD]


def test_an_interrupted_runs_secret_is_removed_but_a_copys_is_reported() -> None:
    doc = envfile.parse(with_id(env_text()))
    orphan = named(ORPHAN, IID, after=HELD[:8])  # this file's run, killed after addPassword
    copy = named(OLD, IID, after="77777777", at=COPY)  # made by a copy of this file that rotated on its own
    plan = plan_rotate(RotateRequest(env_file=ENV, if_expiring_within=dt.timedelta(days=30)), doc,
                       app(named(HELD, IID), orphan, copy), NOW)
    assert [s.key_id for s in plan.steps] == [ORPHAN]
    assert any("a copy of this file" in n and OLD in n for n in plan.notes)


def test_a_copy_that_rotated_away_the_held_secret_is_not_fought() -> None:
    """The other file rotated first: our held secret is gone and its successor is theirs, not an orphan."""
    doc = envfile.parse(with_id(env_text()))
    theirs = named(OLD, IID, after=HELD[:8], at=COPY)
    plan = plan_rotate(RotateRequest(env_file=ENV), doc, app(theirs), NOW)
    assert OLD not in [s.key_id for s in plan.of(RemoveSecret)]
    assert any("a copy of this file" in n for n in plan.notes)


def test_the_secret_of_the_file_this_one_replaced_goes_once_the_new_one_works() -> None:
    """A redeploy: the file at this path was made again; the secret its predecessor made here is held by no file."""
    doc = envfile.parse(with_id(env_text(key=None)))
    gone = named(OLD, IID, after="77777777")   # made at this very path, by the file this one replaced
    plan = plan_rotate(RotateRequest(env_file=ENV), doc, app(gone), NOW)
    assert shape(plan)[-2:] == ["WriteEnv*", "RemoveSecret"] and plan.steps[-1].key_id == OLD
    assert shape(plan).index("VerifySecret") < shape(plan).index("RemoveSecret")
    assert not any("a copy of this file" in n for n in plan.notes)
    # at the limit it makes room instead, and never names the held secret
    full = plan_rotate(RotateRequest(env_file=ENV), envfile.parse(with_id(env_text())), app(named(HELD, IID), gone), NOW)
    assert shape(full)[0] == "RemoveSecret" and full.steps[0].key_id == OLD


def test_the_installation_id_is_recorded_and_names_new_secrets() -> None:
    plan = plan_rotate(RotateRequest(env_file=ENV), envfile.parse(with_id(env_text())), app(named(HELD, IID)), NOW)
    (add,) = plan.of(AddSecret)
    assert f" id:{IID} after:{HELD[:8]} at:" in add.display_name
    (write,) = plan.of(WriteEnv)
    assert "CYPHT_AZURE_INSTALLATION_ID" not in write.values  # already recorded
