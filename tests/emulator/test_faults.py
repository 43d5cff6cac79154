"""Every fault kind, through the Python API and the admin endpoint."""

from __future__ import annotations

import time

import httpx
import pytest

from cypht_azure.emulator import Emulator
from cypht_azure.emulator.wire import Request

from .conftest import Graph, ca_context, token_for


def _new_app(graph: Graph, name: str = "fault-demo") -> dict[str, str]:
    r = graph.post("/applications", json={"displayName": name})
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_latency_applies_to_matching_requests(emulator: Emulator, graph: Graph) -> None:
    emulator.faults.latency(0.25, path=r"^/v1\.0/applications$")
    started = time.monotonic()
    assert graph.get("/applications").status_code == 200
    assert time.monotonic() - started >= 0.25
    started = time.monotonic()
    assert graph.get("/servicePrincipals").status_code == 200
    assert time.monotonic() - started < 0.2


def test_503_with_retry_after_fires_once(emulator: Emulator, graph: Graph) -> None:
    app = _new_app(graph)
    emulator.faults.add(method="POST", path=r"/addPassword$", status=503, retry_after=1, times=1)
    first = graph.post(f"/applications/{app['id']}/addPassword", json={})
    assert first.status_code == 503 and first.headers["retry-after"] == "1"
    assert first.json()["error"]["code"] == "serviceNotAvailable"
    assert set(first.json()["error"]["innerError"]) == {"date", "request-id", "client-request-id"}
    assert graph.post(f"/applications/{app['id']}/addPassword", json={}).status_code == 200
    entries = [e for e in emulator.request_log if e.path.endswith("/addPassword")]
    assert [(e.status, e.fault) for e in entries] == [(503, "status"), (200, None)]


def test_429_has_graphs_throttling_body(emulator: Emulator, graph: Graph) -> None:
    emulator.faults.throttle("GET", r"^/v1\.0/applications$", retry_after="2.128", times=2)
    for _ in range(2):
        r = graph.get("/applications")
        assert r.status_code == 429 and r.headers["retry-after"] == "2.128"
        error = r.json()["error"]
        assert error["code"] == "TooManyRequests" and error["message"] == "Please retry again later."
        assert error["innerError"]["code"] == "429" and error["innerError"]["status"] == "429"
        assert error["innerError"]["message"] == "Please retry after"
    assert graph.get("/applications").status_code == 200


def test_500_and_unlimited_times(emulator: Emulator, graph: Graph) -> None:
    rule = emulator.faults.add(method="GET", path=r"^/v1\.0/servicePrincipals$", status=500, times=None)
    for _ in range(3):
        r = graph.get("/servicePrincipals")
        assert r.status_code == 500 and r.json()["error"]["code"] == "generalException"
    emulator.faults.remove(rule.id)
    assert graph.get("/servicePrincipals").status_code == 200


def test_dropped_connection(emulator: Emulator, graph: Graph) -> None:
    emulator.faults.drop("POST", r"^/v1\.0/applications$")
    with pytest.raises(httpx.TransportError):
        graph.post("/applications", json={"displayName": "never"})
    assert emulator.directory.applications()[-1]["displayName"] != "never"  # dropped before the router
    assert graph.post("/applications", json={"displayName": "second try"}).status_code == 201
    dropped = [e for e in emulator.request_log if e.fault == "drop"]
    assert len(dropped) == 1 and dropped[0].status == 0


def test_hang_then_drop_times_the_client_out(emulator: Emulator, graph: Graph) -> None:
    emulator.faults.hang("GET", r"^/v1\.0/applications$", seconds=2)
    with pytest.raises(httpx.TimeoutException):
        graph.get("/applications", timeout=0.3)


def test_token_endpoint_faults_by_kind(emulator: Emulator) -> None:
    info = emulator.info
    emulator.faults.add(status=503, kind="token", retry_after=1)
    url = f"{info['authority_host']}/{info['tenant_id']}/oauth2/v2.0/token"
    form = {"grant_type": "client_credentials", "client_id": info["admin_client_id"],
            "client_secret": info["admin_client_secret"], "scope": "https://graph.microsoft.com/.default"}
    r = httpx.post(url, data=form, verify=ca_context(emulator))
    assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable"
    assert httpx.post(url, data=form, verify=ca_context(emulator)).status_code == 200


def test_replication_lag_by_request_count(emulator: Emulator, graph: Graph) -> None:
    emulator.faults.replication_lag(requests=3)
    app = _new_app(graph)
    first = graph.get(f"/applications/{app['id']}")
    assert first.status_code == 404 and first.json()["error"]["code"] == "Request_ResourceNotFound"
    assert app["id"] in first.json()["error"]["message"]
    assert graph.post(f"/applications(appId='{app['appId']}')/addPassword", json={}).status_code == 404
    sp = graph.post("/servicePrincipals", json={"appId": app["appId"]})
    assert sp.status_code == 400
    assert sp.json()["error"]["message"] == (
        f"The appId '{app['appId']}' of the service principal does not reference a valid application object.")
    assert graph.get(f"/applications/{app['id']}").status_code == 200
    assert graph.post("/servicePrincipals", json={"appId": app["appId"]}).status_code == 201


def test_replication_lag_by_time(emulator: Emulator, graph: Graph) -> None:
    emulator.faults.replication_lag(ms=300)
    app = _new_app(graph)
    assert graph.patch(f"/applications/{app['id']}", json={"notes": "x"}).status_code == 404
    time.sleep(0.35)
    assert graph.patch(f"/applications/{app['id']}", json={"notes": "x"}).status_code == 204


def test_secret_activation_delay(emulator: Emulator, graph: Graph) -> None:
    emulator.faults.secret_activation_delay(ms=400)
    app = _new_app(graph)
    graph.post("/servicePrincipals", json={"appId": app["appId"]})
    secret = graph.post(f"/applications/{app['id']}/addPassword", json={}).json()["secretText"]
    info = emulator.info
    url = f"{info['authority_host']}/{info['tenant_id']}/oauth2/v2.0/token"
    form = {"grant_type": "client_credentials", "client_id": app["appId"], "client_secret": secret,
            "scope": "https://graph.microsoft.com/.default"}
    early = httpx.post(url, data=form, verify=ca_context(emulator))
    assert early.status_code == 401 and early.json()["error_codes"] == [7000215]
    time.sleep(0.45)
    assert httpx.post(url, data=form, verify=ca_context(emulator)).status_code == 200


def test_secret_lifetime_policy(emulator: Emulator, graph: Graph) -> None:
    app = _new_app(graph)
    emulator.faults.secret_lifetime_policy(max_days=90, policy_id="538f1913-366a-440a-95a0-e195cb55b282")
    refused = graph.post(f"/applications/{app['id']}/addPassword", json={})  # default = 2 years
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "CredentialInvalidLifetimeAsPerAppPolicy"
    assert error["message"] == ("Credential lifetime exceeds the max value allowed as per assigned policy "
                                "'538f1913-366a-440a-95a0-e195cb55b282'.")
    assert error["details"] == [{"code": "InvalidKeyEndDate", "message": error["message"], "target": "EndDate"}]
    short = {"passwordCredential": {"startDateTime": "2030-01-01T00:00:00Z", "endDateTime": "2030-03-01T00:00:00Z"}}
    ok = graph.post(f"/applications/{app['id']}/addPassword", json=short)
    assert ok.status_code == 200 and ok.json()["endDateTime"] == "2030-03-01T00:00:00Z"


def test_directory_quota(emulator: Emulator, graph: Graph) -> None:
    emulator.faults.quota(1)
    _new_app(graph, "first")
    r = graph.post("/applications", json={"displayName": "second"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "Directory_QuotaExceeded"
    emulator.faults.clear()
    assert graph.post("/applications", json={"displayName": "second"}).status_code == 201


def test_admin_endpoint_speaks_the_same_vocabulary(emulator: Emulator, graph: Graph) -> None:
    admin = httpx.Client(base_url=emulator.base_url, verify=ca_context(emulator))
    rule = admin.post("/_emulator/faults/add", json={"method": "GET", "path": "^/v1\\.0/applications$",
                                                     "status": 503, "retry_after": 1, "times": 1})
    assert rule.status_code == 200 and rule.json()["status"] == 503
    assert admin.get("/_emulator/faults").json()["rules"][0]["path"] == "^/v1\\.0/applications$"
    assert graph.get("/applications").status_code == 503
    assert admin.post("/_emulator/faults/replication_lag", json={"requests": 1}).status_code == 204
    app = _new_app(graph)
    assert graph.get(f"/applications/{app['id']}").status_code == 404
    assert admin.post("/_emulator/faults/latency", json={"seconds": 0.01}).status_code == 200
    assert admin.post("/_emulator/faults/bogus", json={}).status_code == 404
    assert admin.post("/_emulator/faults/add", json={"nonsense": 1}).status_code == 400
    assert admin.delete("/_emulator/faults").status_code == 204
    assert admin.get("/_emulator/faults").json()["rules"] == []
    log = admin.get("/_emulator/log").json()["value"]
    assert {"method", "path", "status", "kind", "timestamp"} <= set(log[0])
    info = admin.get("/_emulator/info").json()
    assert info["tenant_id"] == emulator.info["tenant_id"] and "admin_client_secret" not in info
    assert admin.delete("/_emulator/log").status_code == 204
    assert [(e.method, e.path) for e in emulator.request_log] == [("DELETE", "/_emulator/log")]
    admin.close()


def test_admin_endpoint_refuses_non_loopback_clients(emulator: Emulator) -> None:
    assert emulator._server is not None
    req = Request("GET", "/_emulator/faults", {}, b"", "192.0.2.10", "127.0.0.1")
    assert emulator._server.pipeline.handle(req).status == 403


def test_request_log_never_holds_secrets_or_tokens(emulator: Emulator) -> None:
    info = emulator.info
    token = token_for(emulator, info["admin_client_id"], info["admin_client_secret"])
    graph = Graph(emulator, token)
    app = _new_app(graph)
    secret = graph.post(f"/applications/{app['id']}/addPassword", json={}).json()["secretText"]
    text = repr([e.as_dict() for e in emulator.request_log])
    for sensitive in (info["admin_client_secret"], token, secret):
        assert sensitive not in text
    kinds = {e.kind for e in emulator.request_log}
    assert kinds == {"token", "graph"}
    graph.close()
