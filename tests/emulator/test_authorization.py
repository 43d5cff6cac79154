"""401 for bad tokens, 403 for missing privileges — as Graph answers them."""

from __future__ import annotations

import httpx

from cypht_azure.emulator import Emulator

from .conftest import Graph, ca_context, graph_as, token_for

DENIED = {"code": "Authorization_RequestDenied", "message": "Insufficient privileges to complete the operation."}


def _error(r: httpx.Response) -> dict[str, str]:
    error = r.json()["error"]
    return {"code": error["code"], "message": error["message"]}


def test_missing_malformed_forged_expired_and_misaddressed_tokens(emulator: Emulator) -> None:
    def get(token: str | None) -> httpx.Response:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return httpx.get(emulator.info["graph_url"] + "/applications", headers=headers, verify=ca_context(emulator))

    cases = {
        None: "Access token is empty.",
        "garbage": "IDX14100: JWT is not well formed, there are no dots (.).",
        emulator.issue_access_token(lifetime=-60): "Lifetime validation failed, the token is expired.",
        emulator.issue_access_token(audience="https://management.core.windows.net/"):
            "Access token validation failure. Invalid audience.",
    }
    with Emulator() as other:  # same shape, another tenant's signing key
        cases[other.issue_access_token()] = "Access token validation failure."
    for token, message in cases.items():
        r = get(token)
        assert r.status_code == 401, token
        assert _error(r) == {"code": "InvalidAuthenticationToken", "message": message}
        assert set(r.json()["error"]["innerError"]) == {"date", "request-id", "client-request-id"}
    assert get(emulator.issue_access_token()).status_code == 200


def test_read_only_identity_gets_403_on_writes(emulator: Emulator) -> None:
    client_id, secret = emulator.directory.add_app_identity("reader", roles=["Application.Read.All"])
    reader = graph_as(emulator, client_id, secret)
    assert reader.get("/applications").status_code == 200
    r = reader.post("/applications", json={"displayName": "nope"})
    assert r.status_code == 403 and _error(r) == DENIED
    admin_app = emulator.directory.get_application(app_id=emulator.info["admin_client_id"])
    assert admin_app is not None
    r = reader.post(f"/applications/{admin_app['id']}/addPassword", json={})
    assert r.status_code == 403 and _error(r) == DENIED
    reader.close()


def test_identity_without_roles_gets_403_everywhere(emulator: Emulator) -> None:
    client_id, secret = emulator.directory.add_app_identity("nobody", roles=[])
    nobody = graph_as(emulator, client_id, secret)
    for r in (nobody.get("/applications"), nobody.post("/applications", json={"displayName": "x"}),
              nobody.get("/servicePrincipals")):
        assert r.status_code == 403 and _error(r) == DENIED
    nobody.close()


def test_owned_by_identity_manages_only_what_it_owns(emulator: Emulator) -> None:
    client_id, secret = emulator.directory.add_app_identity("owner", roles=["Application.ReadWrite.OwnedBy"])
    owner = graph_as(emulator, client_id, secret)
    foreign = emulator.directory.create_application(displayName="someone else's")
    mine = owner.post("/applications", json={"displayName": "mine"})
    assert mine.status_code == 201
    app = mine.json()
    assert owner.post(f"/applications/{app['id']}/addPassword", json={}).status_code == 200
    assert owner.patch(f"/applications/{app['id']}", json={"notes": "ok"}).status_code == 204
    assert owner.get(f"/applications/{app['id']}").status_code == 200
    assert owner.get(f"/applications/{app['id']}/owners").json()["value"][0]["appId"] == client_id
    for r in (owner.patch(f"/applications/{foreign['id']}", json={"notes": "x"}),
              owner.post(f"/applications/{foreign['id']}/addPassword", json={}),
              owner.get(f"/applications/{foreign['id']}"),
              owner.get("/applications")):
        assert r.status_code == 403 and _error(r) == DENIED
    owner.close()


def test_plain_user_creates_and_owns_but_cannot_touch_others(emulator: Emulator) -> None:
    emulator.directory.add_user("member@cyphtemulator.onmicrosoft.com", directory_roles=[])
    member = Graph(emulator, emulator.issue_access_token(upn="member@cyphtemulator.onmicrosoft.com"))
    app = member.post("/applications", json={"displayName": "members-app"}).json()
    owners = member.get(f"/applications/{app['id']}/owners").json()["value"]
    assert [o["userPrincipalName"] for o in owners] == ["member@cyphtemulator.onmicrosoft.com"]
    assert owners[0]["@odata.type"] == "#microsoft.graph.user"
    assert member.post(f"/applications/{app['id']}/addPassword", json={}).status_code == 200
    foreign = emulator.directory.create_application(displayName="admins-app")
    r = member.delete(f"/applications/{foreign['id']}")
    assert r.status_code == 403 and _error(r) == DENIED
    me = member.get("/me").json()
    assert me["userPrincipalName"] == "member@cyphtemulator.onmicrosoft.com"
    member.close()


def test_admin_user_role_allows_everything(emulator: Emulator) -> None:
    admin = Graph(emulator, emulator.issue_access_token(upn=emulator.info["admin_user"]))
    foreign = emulator.directory.create_application(displayName="anyone's")
    assert admin.patch(f"/applications/{foreign['id']}", json={"notes": "x"}).status_code == 204
    admin.close()


def test_arm_subscriptions(emulator: Emulator) -> None:
    info = emulator.info
    token = token_for(emulator, info["admin_client_id"], info["admin_client_secret"],
                      scope="https://management.core.windows.net//.default")
    url = f"{emulator.base_url}/subscriptions?api-version=2022-12-01"
    r = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, verify=ca_context(emulator))
    assert r.status_code == 200 and r.json() == {"value": []}
    assert httpx.get(url, verify=ca_context(emulator)).status_code == 401
    tenants = httpx.get(f"{emulator.base_url}/tenants?api-version=2022-12-01",
                        headers={"Authorization": f"Bearer {token}"}, verify=ca_context(emulator)).json()
    assert tenants["value"][0]["tenantId"] == info["tenant_id"]
    assert [e.kind for e in emulator.request_log][-3:] == ["arm", "arm", "arm"]
