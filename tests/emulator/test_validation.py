"""Graph's validation rules and protocol details."""

from __future__ import annotations

import base64
import uuid

import pytest

from cypht_azure.emulator import Emulator

from .conftest import Graph


def _bad(r: object, code: str = "Request_BadRequest", message: str | None = None) -> None:
    import httpx
    assert isinstance(r, httpx.Response)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == code
    if message is not None:
        assert r.json()["error"]["message"] == message


def test_unknown_property_and_ignored_annotations(graph: Graph) -> None:
    _bad(graph.post("/applications", json={"displayName": "x", "colour": "red"}),
         message="Property 'colour' does not exist on type 'microsoft.graph.application'.")
    _bad(graph.post("/applications", json={"displayName": "x", "web": {"redirectUri": []}}),
         message="Property 'redirectUri' does not exist on type 'microsoft.graph.webApplication'.")
    ok = graph.post("/applications", json={"@odata.type": "#microsoft.graph.application", "displayName": "x",
                                           "web": {"@odata.type": "#microsoft.graph.webApplication"}})
    assert ok.status_code == 201


def test_display_name_rules(graph: Graph) -> None:
    _bad(graph.post("/applications", json={}))
    _bad(graph.post("/applications", json={"displayName": "a" * 121}))
    assert graph.post("/applications", json={"displayName": "a" * 120}).status_code == 201
    personal = {"signInAudience": "AzureADandPersonalMicrosoftAccount", "api": {"requestedAccessTokenVersion": 2}}
    _bad(graph.post("/applications", json={"displayName": "a" * 91, **personal}))
    assert graph.post("/applications", json={"displayName": "a" * 90, **personal}).status_code == 201


def test_personal_audiences_need_token_version_2(graph: Graph) -> None:
    for audience in ("AzureADandPersonalMicrosoftAccount", "PersonalMicrosoftAccount"):
        _bad(graph.post("/applications", json={"displayName": "p", "signInAudience": audience}),
             "InvalidAccessTokenVersion", "One or more properties contains invalid values.")
    app = graph.post("/applications", json={"displayName": "p"}).json()
    _bad(graph.patch(f"/applications/{app['id']}", json={"signInAudience": "PersonalMicrosoftAccount"}),
         "InvalidAccessTokenVersion")
    both = {"signInAudience": "PersonalMicrosoftAccount", "api": {"requestedAccessTokenVersion": 2}}
    assert graph.patch(f"/applications/{app['id']}", json=both).status_code == 204
    _bad(graph.post("/applications", json={"displayName": "p", "signInAudience": "Everyone"}),
         message="Invalid value specified for property 'signInAudience' of resource 'Application'.")


@pytest.mark.parametrize(("uri", "personal", "ok"), [
    ("https://cypht.example.org/?page=home&tab=oauth", False, True),
    ("https://cypht.example.org/?page=home&tab=oauth", True, False),  # no query with personal accounts
    ("http://localhost:8080/callback", True, True),
    ("http://127.0.0.1/callback", False, True),
    ("http://cypht.example.org/callback", False, False),  # https required off loopback
    ("https://cypht.example.org/call;back", False, False),  # forbidden characters
    ("https://cypht.example.org/cb(1)", False, False),
    ("https://*.example.org/cb", False, True),
    ("https://*.example.org/cb", True, False),  # no wildcards with personal accounts
    ("https://cypht.example.org/" + "a" * 231, False, False),  # 257 characters
    ("https://cypht.example.org/" + "a" * 230, False, True),  # 256 characters
])
def test_redirect_uri_rules(graph: Graph, uri: str, personal: bool, ok: bool) -> None:
    body = {"displayName": "r", "web": {"redirectUris": [uri]}}
    if personal:
        body.update(signInAudience="AzureADandPersonalMicrosoftAccount", api={"requestedAccessTokenVersion": 2})
    r = graph.post("/applications", json=body)
    if ok:
        assert r.status_code == 201, r.text
    else:
        _bad(r, message="Invalid value specified for property 'web' of resource 'Application'.")


def test_redirect_uri_count_limits(graph: Graph) -> None:
    uris = [f"https://cypht.example.org/{i}" for i in range(257)]
    _bad(graph.post("/applications", json={"displayName": "r", "web": {"redirectUris": uris}}))
    assert graph.post("/applications", json={"displayName": "r", "web": {"redirectUris": uris[:256]}}).status_code == 201
    personal = {"signInAudience": "AzureADandPersonalMicrosoftAccount", "api": {"requestedAccessTokenVersion": 2}}
    _bad(graph.post("/applications", json={"displayName": "r", "spa": {"redirectUris": uris[:101]}, **personal}))


def test_tag_rules(graph: Graph) -> None:
    _bad(graph.post("/applications", json={"displayName": "t", "tags": ["has space"]}))
    _bad(graph.post("/applications", json={"displayName": "t", "tags": ["dup", "DUP"]}))
    _bad(graph.post("/applications", json={"displayName": "t", "tags": [""]}))
    _bad(graph.post("/applications", json={"displayName": "t", "tags": ["x" * 257]}))
    assert graph.post("/applications", json={"displayName": "t", "tags": ["cypht-azure", "env:prod"]}).status_code == 201


def test_required_resource_access_limits(graph: Graph) -> None:
    many = [{"resourceAppId": str(uuid.uuid4()), "resourceAccess": []} for _ in range(51)]
    _bad(graph.post("/applications", json={"displayName": "rra", "requiredResourceAccess": many}))
    scopes = [{"id": str(uuid.uuid4()), "type": "Scope"} for _ in range(31)]
    personal = {"signInAudience": "AzureADandPersonalMicrosoftAccount", "api": {"requestedAccessTokenVersion": 2}}
    rra = [{"resourceAppId": "00000003-0000-0000-c000-000000000000", "resourceAccess": scopes}]
    _bad(graph.post("/applications", json={"displayName": "rra", "requiredResourceAccess": rra, **personal}))
    assert graph.post("/applications", json={"displayName": "rra", "requiredResourceAccess": rra}).status_code == 201
    wrong_type = [{"resourceAppId": "00000003-0000-0000-c000-000000000000",
                   "resourceAccess": [{"id": str(uuid.uuid4()), "type": "Delegated"}]}]
    _bad(graph.post("/applications", json={"displayName": "rra", "requiredResourceAccess": wrong_type}))


def test_patch_replaces_collections(graph: Graph) -> None:
    app = graph.post("/applications", json={"displayName": "c", "tags": ["a", "b"],
                                            "web": {"redirectUris": ["https://x.example/1"]}}).json()
    assert graph.patch(f"/applications/{app['id']}", json={"tags": ["c"],
                                                           "web": {"redirectUris": ["https://x.example/2"]}}).status_code == 204
    got = graph.get(f"/applications/{app['id']}").json()
    assert got["tags"] == ["c"] and got["web"]["redirectUris"] == ["https://x.example/2"]
    assert got["web"]["implicitGrantSettings"] == {"enableAccessTokenIssuance": False, "enableIdTokenIssuance": False}


def test_personal_audience_allows_two_secrets(graph: Graph) -> None:
    app = graph.post("/applications", json={"displayName": "s", "signInAudience": "PersonalMicrosoftAccount",
                                            "api": {"requestedAccessTokenVersion": 2}}).json()
    for _ in range(2):
        assert graph.post(f"/applications/{app['id']}/addPassword", json={}).status_code == 200
    _bad(graph.post(f"/applications/{app['id']}/addPassword", json={}))


def test_add_password_defaults_and_ordering(graph: Graph) -> None:
    app = graph.post("/applications", json={"displayName": "pw"}).json()
    first = graph.post(f"/applications/{app['id']}/addPassword", json={"passwordCredential": {"displayName": "1"}}).json()
    second = graph.post(f"/applications/{app['id']}/addPassword", json={}).json()
    assert int(first["endDateTime"][:4]) - int(first["startDateTime"][:4]) == 2
    assert first["endDateTime"][4:] == first["startDateTime"][4:]
    assert second["displayName"] is None
    listed = graph.get(f"/applications/{app['id']}").json()["passwordCredentials"]
    assert [c["keyId"] for c in listed] == [second["keyId"], first["keyId"]]  # newest first
    _bad(graph.post(f"/applications/{app['id']}/addPassword", json={"passwordCredential": {"colour": 1}}))


def test_remove_password_with_unknown_key_id(emulator: Emulator, graph: Graph) -> None:
    app = graph.post("/applications", json={"displayName": "rm"}).json()
    unknown = str(uuid.uuid4())
    r = graph.post(f"/applications/{app['id']}/removePassword", json={"keyId": unknown})
    assert r.status_code == 404 and r.json()["error"]["code"] == "Request_ResourceNotFound"
    emulator.directory.set_option("remove_password_unknown_key_status", 400)
    _bad(graph.post(f"/applications/{app['id']}/removePassword", json={"keyId": unknown}))


def test_identifiers_and_alternate_keys(graph: Graph) -> None:
    _bad(graph.get("/applications/not-a-guid"), message="Invalid object identifier 'not-a-guid'.")
    missing = str(uuid.uuid4())
    r = graph.get(f"/applications/{missing}")
    assert r.status_code == 404 and r.json()["error"]["message"] == (
        f"Resource '{missing}' does not exist or one of its queried reference-property objects are not present.")
    app = graph.post("/applications", json={"displayName": "k"}).json()
    graph.patch("/applications(uniqueName='o''brien%20app')", json={"displayName": "q"},
                headers={"Prefer": "create-if-missing"})
    assert graph.get("/applications(uniqueName='o''brien app')").json()["uniqueName"] == "o'brien app"
    assert graph.get(f"/applications(appId='{app['appId']}')").json()["id"] == app["id"]
    assert graph.get(f"/applications(appId=%27{app['appId']}%27)").status_code == 200
    assert graph.get(f"//applications/{app['id']}").status_code == 200  # repeated slashes collapse


def test_select_changes_the_context_and_the_keys(graph: Graph) -> None:
    app = graph.post("/applications", json={"displayName": "sel"}).json()
    one = graph.get(f"/applications/{app['id']}?$select=displayName,appId").json()
    assert one["@odata.context"].endswith("$metadata#applications(displayName,appId)/$entity")
    assert set(one) == {"@odata.context", "appId", "displayName"}
    listed = graph.get("/applications?$select=id&$filter=displayName eq 'SEL'").json()
    assert listed["@odata.context"].endswith("$metadata#applications(id)")
    assert listed["value"] == [{"id": app["id"]}]  # displayName eq is case-insensitive
    _bad(graph.get("/applications?$select=nope"))


def test_query_limits_and_advanced_queries(graph: Graph) -> None:
    _bad(graph.get("/applications?$top=1000"),
         message="Invalid page size specified: '1000'. Must be between 1 and 999 inclusive.")
    _bad(graph.get("/applications?$filter=displayName ne 'x'"), "Request_UnsupportedQuery", "Unsupported Query.")
    _bad(graph.get("/applications?$filter=endswith(displayName,'x')"), "Request_UnsupportedQuery")
    _bad(graph.get("/applications?$count=true"), message="$count is not currently supported.")
    _bad(graph.get('/applications?$search="displayName:x"'), "Request_UnsupportedQuery")
    eventual = {"ConsistencyLevel": "eventual"}
    graph.post("/applications", json={"displayName": "needle-app"})
    r = graph.get("/applications?$filter=endswith(displayName,'-app')&$count=true", headers=eventual).json()
    assert r["@odata.count"] == 1
    r = graph.get('/applications?$search="displayName:needle"&$count=true', headers=eventual).json()
    assert [a["displayName"] for a in r["value"]] == ["needle-app"]
    count = graph.get("/applications/$count", headers=eventual)
    assert count.headers["content-type"] == "text/plain" and int(count.text) >= 3
    _bad(graph.get("/applications?$filter=displayName eq"), "BadRequest")


def test_methods_and_unknown_segments(graph: Graph) -> None:
    r = graph.request("PUT", "/applications")
    assert r.status_code == 405
    r = graph.get("/nothingHere")
    assert r.status_code == 400 and r.json()["error"]["code"] == "BadRequest"


def test_owners_add_and_remove(emulator: Emulator, graph: Graph) -> None:
    app = graph.post("/applications", json={"displayName": "owned"}).json()
    user_id = emulator.directory.add_user("owner@cyphtemulator.onmicrosoft.com")
    ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{user_id}"}
    assert graph.post(f"/applications/{app['id']}/owners/$ref", json=ref).status_code == 204
    _bad(graph.post(f"/applications/{app['id']}/owners/$ref", json=ref),
         message="One or more added object references already exist for the following modified properties: 'owners'.")
    owners = graph.get(f"/applications/{app['id']}/owners").json()["value"]
    assert {o["@odata.type"] for o in owners} == {"#microsoft.graph.servicePrincipal", "#microsoft.graph.user"}
    assert graph.delete(f"/applications/{app['id']}/owners/{user_id}/$ref").status_code == 204
    assert graph.delete(f"/applications/{app['id']}/owners/{user_id}/$ref").status_code == 404
    assert graph.get(f"/users/{user_id}").status_code == 403  # User.Read.All is not granted to the admin app


def test_service_principal_rules(graph: Graph) -> None:
    _bad(graph.post("/servicePrincipals", json={"appId": str(uuid.uuid4())}))
    app = graph.post("/applications", json={"displayName": "spa", "tags": ["cypht-azure"],
                                            "identifierUris": ["api://cypht-spa"]}).json()
    sp = graph.post("/servicePrincipals", json={"appId": app["appId"], "accountEnabled": True})
    assert sp.status_code == 201 and sp.headers["location"].endswith("Microsoft.DirectoryServices.ServicePrincipal")
    body = sp.json()
    assert body["servicePrincipalNames"] == [app["appId"], "api://cypht-spa"] and body["tags"] == ["cypht-azure"]
    found = graph.get(f"/servicePrincipals?$filter=servicePrincipalNames/any(c:c eq '{app['appId']}')").json()
    assert [s["id"] for s in found["value"]] == [body["id"]]
    assert graph.get(f"/servicePrincipals(appId='{app['appId']}')").json()["id"] == body["id"]
    exo = graph.get("/servicePrincipals(appId='00000002-0000-0ff1-ce00-000000000000')").json()
    assert exo["displayName"] == "Office 365 Exchange Online"
    pw = graph.post(f"/servicePrincipals/{body['id']}/addPassword", json={}).json()
    assert pw["hint"] is None and pw["secretText"]
    assert graph.delete(f"/servicePrincipals/{body['id']}").status_code == 204
    assert graph.get(f"/servicePrincipals/{body['id']}").status_code == 404


def test_grant_id_format_filter_patch_delete(graph: Graph) -> None:
    app = graph.post("/applications", json={"displayName": "g"}).json()
    sp = graph.post("/servicePrincipals", json={"appId": app["appId"]}).json()
    resource = graph.get("/servicePrincipals(appId='00000003-0000-0000-c000-000000000000')").json()
    body = {"clientId": sp["id"], "consentType": "AllPrincipals", "resourceId": resource["id"], "scope": "openid"}
    made = graph.post("/oauth2PermissionGrants", json=body)
    assert made.status_code == 201
    expected = base64.urlsafe_b64encode(uuid.UUID(sp["id"]).bytes_le + uuid.UUID(resource["id"]).bytes_le)
    assert made.json()["id"] == expected.rstrip(b"=").decode()
    assert made.json()["principalId"] is None
    dup = graph.post("/oauth2PermissionGrants", json=body)
    assert dup.status_code == 409 and dup.json()["error"]["message"] == "Permission entry already exists."
    _bad(graph.post("/oauth2PermissionGrants", json={**body, "scope": "Not.A.Scope"}))
    listed = graph.get(f"/oauth2PermissionGrants?$filter=clientId eq '{sp['id']}'").json()["value"]
    assert [g["id"] for g in listed] == [made.json()["id"]]
    grant_id = made.json()["id"]
    assert graph.patch(f"/oauth2PermissionGrants/{grant_id}", json={"scope": "openid SMTP.Send"}).status_code == 204
    assert graph.get(f"/oauth2PermissionGrants/{grant_id}").json()["scope"] == "openid SMTP.Send"
    assert graph.delete(f"/oauth2PermissionGrants/{grant_id}").status_code == 204
    assert graph.get(f"/oauth2PermissionGrants/{grant_id}").status_code == 404


def test_federated_identity_credential_rules(graph: Graph) -> None:
    app = graph.post("/applications", json={"displayName": "fic"}).json()
    base = f"/applications/{app['id']}/federatedIdentityCredentials"
    good = {"name": "gh-0", "issuer": "https://token.actions.githubusercontent.com", "subject": "repo:a/b:ref:x",
            "audiences": ["api://AzureADTokenExchange"]}
    created = graph.post(base, json=good)
    assert created.status_code == 201
    assert created.json()["@odata.context"].endswith(f"#applications('{app['id']}')/federatedIdentityCredentials/$entity")
    assert graph.post(base, json=good).status_code == 409  # same name
    assert graph.post(base, json={**good, "name": "gh-dup"}).status_code == 409  # same issuer + subject
    _bad(graph.post(base, json={**good, "name": "x y", "subject": "s1"}))
    _bad(graph.post(base, json={**good, "name": "gh-a", "subject": "s2", "audiences": ["a", "b"]}))
    _bad(graph.post(base, json={**good, "name": "gh-b", "subject": "s" * 601}))
    for i in range(1, 20):
        assert graph.post(base, json={**good, "name": f"gh-{i}", "subject": f"s-{i}"}).status_code == 201
    _bad(graph.post(base, json={**good, "name": "gh-20", "subject": "s-20"}))
    by_name = graph.get(f"{base}(name='gh-3')").json()
    assert by_name["subject"] == "s-3"
    assert graph.patch(f"{base}/{by_name['id']}", json={"subject": "s-3b"}).status_code == 204
    assert graph.get(f"{base}/{by_name['id']}").json()["subject"] == "s-3b"
    assert graph.delete(f"{base}/{by_name['id']}").status_code == 204
    assert len(graph.get(base).json()["value"]) == 19


def test_soft_delete_restore_and_purge(graph: Graph) -> None:
    app = graph.post("/applications", json={"displayName": "del"}).json()
    graph.post("/servicePrincipals", json={"appId": app["appId"]})
    assert graph.delete(f"/applications/{app['id']}").status_code == 204
    assert graph.get(f"/applications/{app['id']}").status_code == 404
    item = graph.get(f"/directory/deletedItems/{app['id']}").json()
    assert item["@odata.type"] == "#microsoft.graph.application" and item["deletedDateTime"]
    listed = graph.get("/directory/deletedItems/microsoft.graph.application").json()["value"]
    assert [a["id"] for a in listed] == [app["id"]]
    restored = graph.post(f"/directory/deletedItems/{app['id']}/restore")
    assert restored.status_code == 200
    assert restored.json()["@odata.context"].endswith("$metadata#directoryObjects/$entity")
    assert restored.json()["@odata.type"] == "#microsoft.graph.application"
    assert restored.json()["appId"] == app["appId"] and restored.json()["deletedDateTime"] is None
    assert graph.get(f"/servicePrincipals(appId='{app['appId']}')").status_code == 200  # restored with the app
    graph.delete(f"/applications/{app['id']}")
    assert graph.delete(f"/directory/deletedItems/{app['id']}").status_code == 204
    assert graph.get(f"/directory/deletedItems/{app['id']}").status_code == 404
