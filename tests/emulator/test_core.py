"""Applications, secrets and the token endpoint over real HTTPS."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from cypht_azure.emulator import Emulator
from cypht_azure.emulator.schema import parse_time

from .conftest import Graph, ca_context

GRAPH_CT = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"


def _token_request(emu: Emulator, **form: str) -> httpx.Response:
    info = emu.info
    data = {"grant_type": "client_credentials", "scope": "https://graph.microsoft.com/.default", **form}
    return httpx.post(f"{info['authority_host']}/{info['tenant_id']}/oauth2/v2.0/token", data=data,
                      verify=ca_context(emu))


def test_openid_configuration_points_back_at_the_emulator(emulator: Emulator) -> None:
    info = emulator.info
    r = httpx.get(f"{info['authority_host']}/{info['tenant_id']}/v2.0/.well-known/openid-configuration",
                  verify=ca_context(emulator))
    assert r.status_code == 200
    doc = r.json()
    assert doc["token_endpoint"] == f"{info['authority_host']}/{info['tenant_id']}/oauth2/v2.0/token"
    assert doc["device_authorization_endpoint"].endswith("/oauth2/v2.0/devicecode")
    assert doc["authorization_endpoint"].startswith(info["authority_host"])
    r = httpx.get(f"{info['authority_host']}/no-such-tenant/v2.0/.well-known/openid-configuration",
                  verify=ca_context(emulator))
    assert r.status_code == 400 and r.json()["error_codes"] == [90002]


def test_create_application_returns_full_default_body(graph: Graph) -> None:
    r = graph.post("/applications", json={"@odata.type": "#microsoft.graph.application", "displayName": "demo"})
    assert r.status_code == 201
    assert r.headers["content-type"] == GRAPH_CT
    body = r.json()
    assert body["@odata.context"].endswith("/v1.0/$metadata#applications/$entity")
    assert r.headers["location"].endswith(f"/directoryObjects/{body['id']}/Microsoft.DirectoryServices.Application")
    assert body["id"] != body["appId"]
    assert body["signInAudience"] == "AzureADMyOrg"
    assert body["api"]["requestedAccessTokenVersion"] is None
    assert body["passwordCredentials"] == [] and body["tags"] == []
    assert body["parentalControlSettings"] == {"countriesBlockedForMinors": [], "legalAgeGroupRule": "Allow"}
    assert body["publisherDomain"] == "cyphtemulator.onmicrosoft.com"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z", body["createdDateTime"])
    got = graph.get(f"/applications/{body['id']}").json()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", got["createdDateTime"])
    assert r.headers["request-id"] and r.headers["client-request-id"] == r.headers["request-id"]
    echoed = graph.get(f"/applications/{body['id']}", headers={"client-request-id": "abc-123"})
    assert echoed.headers["client-request-id"] == "abc-123"


def test_add_password_secret_works_then_fails_once_removed(emulator: Emulator, graph: Graph) -> None:
    app = graph.post("/applications", json={"displayName": "secret-demo"}).json()
    assert graph.post("/servicePrincipals", json={"appId": app["appId"]}).status_code == 201
    r = graph.post(f"/applications(appId='{app['appId']}')/addPassword",
                   json={"passwordCredential": {"displayName": "cypht"}})
    assert r.status_code == 200
    cred = r.json()
    secret = cred["secretText"]
    assert re.fullmatch(r"[A-Za-z0-9._~-]{3}8Q~[A-Za-z0-9._~-]{34}", secret)
    assert cred["hint"] == secret[:3]
    assert cred["@odata.context"].endswith("#microsoft.graph.passwordCredential")
    listed = graph.get(f"/applications/{app['id']}").json()["passwordCredentials"]
    assert listed[0]["keyId"] == cred["keyId"] and listed[0]["secretText"] is None

    ok = _token_request(emulator, client_id=app["appId"], client_secret=secret)
    assert ok.status_code == 200, ok.text
    assert ok.json()["token_type"] == "Bearer"
    bad = _token_request(emulator, client_id=app["appId"], client_secret=secret + "x")
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    assert bad.json()["error_codes"] == [7000215]

    r = graph.post(f"/applications/{app['id']}/removePassword", json={"keyId": cred["keyId"]})
    assert r.status_code == 204 and r.content == b"" and "content-type" not in r.headers
    gone = _token_request(emulator, client_id=app["appId"], client_secret=secret)
    assert gone.status_code == 401 and gone.json()["error_codes"] == [7000215]
    log = [e for e in emulator.request_log if e.kind == "token"]
    assert log[-1].grant_type == "client_credentials" and log[-1].client_id == app["appId"]
    assert all(secret not in e.path for e in emulator.request_log)


def test_upsert_matrix(graph: Graph) -> None:
    path = "/applications(uniqueName='cypht-prod')"
    missing = graph.patch(path, json={"displayName": "cypht"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "Request_ResourceNotFound"
    created = graph.patch(path, json={"displayName": "cypht"}, headers={"Prefer": "create-if-missing"})
    assert created.status_code == 201 and created.json()["uniqueName"] == "cypht-prod"
    updated = graph.patch(path, json={"displayName": "cypht 2"}, headers={"Prefer": "create-if-missing"})
    assert updated.status_code == 204 and updated.content == b""
    assert graph.get(path).json()["displayName"] == "cypht 2"


def test_token_errors(emulator: Emulator) -> None:
    unknown = _token_request(emulator, client_id="11111111-2222-3333-4444-555555555555", client_secret="x")
    assert unknown.status_code == 400 and unknown.json()["error_codes"] == [700016]
    assert unknown.json()["error_description"].startswith("AADSTS700016: ")
    info = emulator.info
    r = httpx.post(f"{info['authority_host']}/not-a-tenant/oauth2/v2.0/token", verify=ca_context(emulator),
                   data={"grant_type": "client_credentials", "client_id": info["admin_client_id"],
                         "client_secret": info["admin_client_secret"], "scope": "https://graph.microsoft.com/.default"})
    assert r.status_code == 400 and r.json()["error_codes"] == [90002]
    scope = _token_request(emulator, client_id=info["admin_client_id"], client_secret=info["admin_client_secret"],
                           scope="https://graph.microsoft.com/User.Read")
    assert scope.status_code == 400 and scope.json()["error"] == "invalid_scope"


def test_emulator_starts_fast() -> None:
    started = time.perf_counter()
    with Emulator() as emu:
        elapsed = time.perf_counter() - started
        assert httpx.get(emu.base_url + "/common/discovery/instance", verify=ca_context(emu)).status_code == 200
    assert elapsed < 0.5, elapsed


@pytest.mark.parametrize(("text", "expected"), [
    ("2022-05-07T06:52:43Z", "2022-05-07T06:52:43+00:00"),
    ("2022-05-07T06:52:43.5Z", "2022-05-07T06:52:43.500000+00:00"),
    ("2025-04-08T09:40:20.2882444Z", "2025-04-08T09:40:20.288244+00:00"),
    ("2025-04-08T09:40:20.123+02:00", "2025-04-08T09:40:20.123000+02:00"),
    ("2025-04-08T09:40:20", "2025-04-08T09:40:20+00:00"),
])
def test_graph_timestamps_parse_on_every_supported_python(text: str, expected: str) -> None:
    assert parse_time(text).isoformat() == expected
