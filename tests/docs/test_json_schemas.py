"""The --json output documented in docs/schemas/ matches what the code builds.

Example documents are built from the real result dataclasses (and the real error printer), with the
keys the CLI adds, and checked against the schemas with a small validator for the subset of JSON
Schema the schemas use.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest

from cypht_azure.cli.common import Common, Output
from cypht_azure.errors import AppNotFound, InputError, NeedsConfirmation
from cypht_azure.operations.checks.status import (
    AppSummary,
    Finding,
    ProviderInfo,
    SecretInfo,
    StatusAllResult,
    StatusResult,
)
from cypht_azure.operations.core.deprovision import DeprovisionResult, RestoreResult
from cypht_azure.operations.core.provision import ProvisionResult
from cypht_azure.operations.core.rotate import RotateResult
from cypht_azure.operations.core.steps import (
    DONE,
    UNDONE,
    AddSecret,
    CreateRegistration,
    DeleteRegistration,
    Fill,
    RemoveSecret,
    StepRecord,
    WriteEnv,
)

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "docs" / "schemas"
JSON_DOC = REPO / "docs" / "json.md"
NAMES = ["provision", "rotate-secret", "status", "status-all", "doctor", "deprovision", "restore", "error"]

KEYWORDS = {"$schema", "title", "description", "type", "required", "properties", "additionalProperties",
            "items", "enum"}
TYPES: dict[str, Any] = {
    "object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
    "integer": int, "number": (int, float),
}


def validate(instance: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """Errors of `instance` against `schema` (type, required, properties, additionalProperties, items, enum)."""
    unknown = set(schema) - KEYWORDS
    if unknown:
        return [f"{path}: schema uses unsupported keywords {sorted(unknown)}"]
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        ok = False
        for name in types:
            if name in ("integer", "number") and isinstance(instance, bool):
                continue
            if isinstance(instance, TYPES[name]):
                ok = True
        if not ok:
            return [f"{path}: {instance!r} is not of type {types}"]
    errors: list[str] = []
    if "enum" in schema and instance is not None and instance not in schema["enum"]:
        errors.append(f"{path}: {instance!r} is not one of {schema['enum']}")
    if isinstance(instance, dict):
        for key in schema.get("required", []):
            if key not in instance:
                errors.append(f"{path}: missing required property {key!r}")
        properties = schema.get("properties", {})
        for key, value in instance.items():
            if key in properties:
                errors += validate(value, properties[key], f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{path}: unexpected property {key!r}")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += validate(value, schema["additionalProperties"], f"{path}.{key}")
    if isinstance(instance, list) and "items" in schema:
        for i, item in enumerate(instance):
            errors += validate(item, schema["items"], f"{path}[{i}]")
    return errors


def load(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{name}.json").read_text(encoding="utf-8"))


def roundtrip(doc: dict[str, Any]) -> Any:
    """What a script reading the CLI's stdout sees (the CLI prints with json.dumps(default=str))."""
    return json.loads(json.dumps(doc, default=str))


APP_ID = "11111111-2222-3333-4444-555555555555"
OBJ_ID = "66666666-7777-8888-9999-000000000000"
TENANT = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
KEY = "0f0f0f0f-1111-2222-3333-444444444444"


def provision_docs() -> list[dict[str, Any]]:
    base = dict(
        client_id=APP_ID, object_id=OBJ_ID, tenant_id=TENANT, display_name="Cypht webmail (mail.example.com)",
        unique_name="cypht-azure-mail-example-com-0123456789", sign_in_audience="AzureADandPersonalMicrosoftAccount",
        redirect_uris=["https://mail.example.com/"], secret_key_id=KEY, secret_expires="2027-11-28T10:00:00Z",
        env_file="/var/www/cypht/.env", keys_written=["OUTLOOK_CLIENT_ID", "OUTLOOK_CLIENT_SECRET"],
        created=True, updated_fields=[], secret_created=True, secret_verified=True, dry_run=False,
        steps=[StepRecord(CreateRegistration("Cypht webmail", "cypht-azure-x", {}), DONE, f"client ID {APP_ID}"),
               StepRecord(WriteEnv("/var/www/cypht/.env", {"OUTLOOK_CLIENT_SECRET": Fill.SECRET}, commit=True), DONE)],
    )
    fresh = ProvisionResult(**base)
    dry = ProvisionResult(**{**base, "client_id": "(new)", "object_id": "(new)", "unique_name": None,
                             "secret_key_id": None, "secret_expires": None,
                             "secret_created": False, "secret_verified": None, "dry_run": True,
                             "steps": [StepRecord(RemoveSecret(KEY, "unused"))]},
                          removed_key_ids=[KEY], notes=["Keep the client secret."])
    return [fresh.to_json() | {"sandbox": False}, dry.to_json() | {"sandbox": True}]


def rotate_docs() -> list[dict[str, Any]]:
    base = dict(
        client_id=APP_ID, object_id=OBJ_ID, tenant_id=TENANT, env_file="/var/www/cypht/.env", new_key_id=KEY,
        expires="2027-11-28T10:00:00Z", previous_key_id="9e9e9e9e-1111-2222-3333-444444444444",
        previous_expires="2026-12-10T10:00:00Z", removed_key_ids=["9e9e9e9e-1111-2222-3333-444444444444"],
        kept_key_ids=[], foreign_key_ids=[], providers=["outlook", "office365"],
        keys_written=["OUTLOOK_CLIENT_SECRET", "OUTLOOK_CLIENT_SECRET_ID"], skipped=None, secret_verified=True,
        dry_run=False,
    )
    rotated = RotateResult(**base, steps=[StepRecord(AddSecret("cypht-azure", "2027-11-28T10:00:00Z",
                                                               dt.timedelta(days=365)), UNDONE, f"secret ID {KEY}")])
    skipped = RotateResult(**{**base, "new_key_id": None, "expires": None, "removed_key_ids": [],
                              "keys_written": [], "secret_verified": None,
                              "skipped": {"reason": "the secret is valid for 200 more days"}})
    return [rotated.to_json() | {"sandbox": False}, skipped.to_json() | {"sandbox": True}]


def status_docs() -> list[dict[str, Any]]:
    providers = [
        ProviderInfo("outlook", APP_ID, "https://mail.example.com/", KEY, True, []),
        ProviderInfo("office365", None, None, None, False, ["OFFICE365_CLIENT_ID", "OFFICE365_CLIENT_SECRET"]),
    ]
    secrets = [
        SecretInfo(KEY, "cypht-azure 2026-11-28 mail1:3fa9c2d1", "cypht-azure (this .env)", "Abc",
                   "2026-11-28T10:00:00Z", "2027-11-28T10:00:00Z", 364.9, ["outlook"]),
        SecretInfo("9e9e9e9e-1111-2222-3333-444444444444", None, "someone else", None, None, None, None, []),
    ]
    app = {"client_id": APP_ID, "object_id": OBJ_ID, "display_name": "Cypht webmail (mail.example.com)",
           "sign_in_audience": "AzureADandPersonalMicrosoftAccount", "redirect_uris": ["https://mail.example.com/"],
           "unique_name": None, "managed_by_cypht_azure": True}
    healthy = StatusResult("/var/www/cypht/.env", TENANT, app, providers, secrets,
                           [Finding("warning", "secret-expiring", "expires in 10 days", "Run rotate-secret.")],
                           "2027-11-28T10:00:00Z", 364.9, True)
    missing = StatusResult("/var/www/cypht/.env", TENANT, None, providers, [],
                           [Finding("error", "app-not-found", "No app registration.")])
    return [healthy.to_json() | {"sandbox": False, "failing": False},
            missing.to_json() | {"sandbox": True, "failing": True}]


def status_all_docs() -> list[dict[str, Any]]:
    result = StatusAllResult(TENANT, [
        AppSummary(APP_ID, OBJ_ID, "Cypht webmail (mail.example.com)", "AzureADandPersonalMicrosoftAccount",
                   ["https://mail.example.com/"], 2, "2027-11-28T10:00:00Z", 364.9),
        AppSummary(KEY, OBJ_ID, None, None, [], 0, None, None),
    ], requests=1)
    return [result.to_json() | {"sandbox": False, "failing": False},
            StatusAllResult(TENANT).to_json() | {"sandbox": True, "failing": True}]


def deprovision_docs() -> list[dict[str, Any]]:
    done = DeprovisionResult(APP_ID, OBJ_ID, "Cypht webmail (mail.example.com)", TENANT, "/var/www/cypht/.env",
                             True, False, False, ["OUTLOOK_CLIENT_ID"], False,
                             ["The app registration is already deleted."],
                             [StepRecord(DeleteRegistration(OBJ_ID, APP_ID, None, commit=True), DONE)])
    again = DeprovisionResult(APP_ID, OBJ_ID, None, TENANT, "./.env", False, True, True, [], False)
    return [done.to_json() | {"sandbox": False}, again.to_json() | {"sandbox": True}]


def restore_docs() -> list[dict[str, Any]]:
    return [RestoreResult(APP_ID, OBJ_ID, "Cypht webmail (mail.example.com)", TENANT).to_json() | {"sandbox": False},
            RestoreResult(APP_ID, OBJ_ID, None, TENANT).to_json() | {"sandbox": True}]


def error_docs(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The error object exactly as the CLI's Output.error prints it."""
    out = Output(Common(json=True))
    docs = []
    for exc, code in [(InputError("--url is empty.", hint="Give Cypht's URL."), 2),
                      (AppNotFound("No app registration."), 5),
                      (NeedsConfirmation("needs confirmation"), 7),
                      (ValueError("--fail-within 'x' is not a duration."), 2),
                      (Exception("interrupted"), 130)]:
        out.error(exc, code)
        docs.append(json.loads(capsys.readouterr().out))
    return docs


BUILDERS = {
    "provision": provision_docs, "rotate-secret": rotate_docs, "status": status_docs,
    "status-all": status_all_docs, "deprovision": deprovision_docs, "restore": restore_docs,
}


@pytest.mark.parametrize("name", NAMES)
def test_schema_is_valid_json_with_known_keywords(name: str) -> None:
    schema = load(name)
    assert schema["type"] == "object"

    def walk(node: dict[str, Any], path: str) -> None:
        assert set(node) <= KEYWORDS, f"{name}:{path} uses {set(node) - KEYWORDS}"
        for key in node.get("required", []):
            assert key in node.get("properties", {}), f"{name}:{path} requires undeclared {key}"
        for key, child in node.get("properties", {}).items():
            assert "description" in child, f"{name}:{path}.{key} has no description"
            walk(child, f"{path}.{key}")
        if "items" in node:
            walk(node["items"], f"{path}[]")

    walk(schema, "$")


@pytest.mark.parametrize("name", list(BUILDERS))
def test_documents_built_from_the_dataclasses_match(name: str) -> None:
    schema = load(name)
    for doc in BUILDERS[name]():
        assert validate(roundtrip(doc), schema) == []


def test_error_object_matches(capsys: pytest.CaptureFixture[str]) -> None:
    schema = load("error")
    for doc in error_docs(capsys):
        assert validate(doc, schema) == []


def test_validator_catches_mistakes() -> None:
    schema = load("restore")
    good = restore_docs()[0]
    assert validate(good, schema) == []
    assert validate({k: v for k, v in good.items() if k != "client_id"}, schema)
    assert validate(good | {"extra": 1}, schema)
    assert validate(good | {"sandbox": "yes"}, schema)
    assert validate(status_docs()[0] | {"ok": 1}, load("status"))
    bad_finding = status_docs()[0]
    bad_finding["findings"][0]["severity"] = "fatal"
    assert validate(bad_finding, load("status"))


def test_finding_codes_in_the_schemas_are_the_catalogues() -> None:
    from cypht_azure.operations.checks.findings import CATALOGUE, codes_for

    source = (REPO / "cypht_azure" / "operations" / "checks" / "findings.py").read_text(encoding="utf-8")
    assert set(re.findall(r'_make\(\s*"([a-z0-9-]+)"', source)) == set(CATALOGUE)
    for name in ("status", "doctor"):
        documented = set(load(name)["properties"]["findings"]["items"]["properties"]["code"]["enum"])
        assert documented == codes_for(name), name


@pytest.mark.parametrize("name", NAMES)
def test_json_page_documents_every_field(name: str) -> None:
    text = JSON_DOC.read_text(encoding="utf-8")
    assert f"schemas/{name}.json" in text

    def paths(node: dict[str, Any], prefix: str) -> set[str]:
        found: set[str] = set()
        for key, child in node.get("properties", {}).items():
            path = f"{prefix}{key}"
            found.add(path)
            found |= paths(child, f"{path}.")
            if "items" in child:
                found |= paths(child["items"], f"{path}[].")
        return found

    section = text.split(f"schemas/{name}.json", 1)[1].split("\n## ", 1)[0]
    missing = sorted(p for p in paths(load(name), "") if f"`{p}`" not in section)
    assert not missing, f"docs/json.md does not describe {missing} next to schemas/{name}.json"
