"""Conformance: replay every recorded Graph interaction against the emulator, in order.

Ids are mapped (the emulator hands out its own); each answer must have the recorded status, the
recorded top-level keys, the recorded number of value[] items with their keys, and the recorded
error code. The counts appear in pytest's terminal summary.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import httpx
import pytest

from cypht_azure.emulator import Emulator

from . import recordings

RECORDINGS = recordings.recordings_dir()
CASSETTES = sorted(RECORDINGS.glob("*.yaml")) if RECORDINGS else []
RECORDED_USER = "example@example.com"
TELEMETRY_HEADERS = {"commandname", "parametersetname", "user-agent", "accept-encoding", "connection", "accept",
                     "content-length"}


def test_recordings_are_available() -> None:
    if RECORDINGS is None:
        message = ("graph recordings not found: set CYPHT_AZURE_RECORDINGS or place shared/graph-recordings "
                   "next to the repository")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    assert len(CASSETTES) == 8


def _user_token(emu: Emulator, ctx: ssl.SSLContext) -> str:
    """Sign the recorded user in through the real device-code flow."""
    info = emu.info
    base = f"{info['authority_host']}/{info['tenant_id']}/oauth2/v2.0"
    emu.directory.set_device_code_approver(RECORDED_USER)
    form = {"client_id": info["device_code_client_id"], "scope": "https://graph.microsoft.com/.default openid"}
    code = httpx.post(f"{base}/devicecode", data=form, verify=ctx).json()
    r = httpx.post(f"{base}/token", verify=ctx, data={
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code", "client_id": info["device_code_client_id"],
        "device_code": code["device_code"]})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


@pytest.mark.parametrize("cassette", CASSETTES, ids=[c.stem for c in CASSETTES])
def test_replay(cassette: Path, record_property: pytest.RecordProperty) -> None:
    interactions = recordings.load(cassette)
    ids = recordings.IdMap()
    failures: list[str] = []
    with Emulator() as emu:
        # The recording's signed-in user (a tenant admin) exists before the first call.
        emu.directory.add_user(RECORDED_USER, directory_roles=["Application Administrator"],
                               display_name="rolelivetest")
        ctx = ssl.create_default_context(cafile=emu.info["ca_file"])
        token = _user_token(emu, ctx)
        with httpx.Client(verify=ctx, timeout=10) as client:
            for n, interaction in enumerate(interactions):
                rq, rs = interaction["request"], interaction["response"]
                url = ids.apply(rq["uri"]).replace("https://graph.microsoft.com", emu.base_url, 1)
                headers = {k: v[0] for k, v in rq["headers"].items() if k.lower() not in TELEMETRY_HEADERS}
                headers["Authorization"] = f"Bearer {token}"
                body = ids.apply(rq["body"]).encode() if rq["body"] else None
                answer = client.request(rq["method"], url, content=body, headers=headers)
                recorded = recordings.parse_body(rs["body"]["string"])
                actual = answer.json() if answer.content else None
                where = f"#{n} {rq['method']} {rq['uri']}"
                if answer.status_code != rs["status"]["code"]:
                    failures.append(f"{where}: status {answer.status_code}, recorded {rs['status']['code']}: "
                                    f"{answer.text[:300]}")
                    continue
                problems = recordings.compare(recorded, actual)
                if problems:
                    failures.append(f"{where}: " + "; ".join(problems))
                    continue
                if "location" in rs["headers"] and "location" not in answer.headers:
                    failures.append(f"{where}: no Location header")
                    continue
                ids.learn(recorded, actual)
    matched = len(interactions) - len(failures)
    record_property("conformance", f"{cassette.name}:{len(interactions)}:{matched}")
    print(f"{cassette.name}: replayed {len(interactions)}, matched {matched}")
    assert not failures, "\n".join(failures)


def test_comparison_flags_key_count_and_code_differences() -> None:
    recorded = {"@odata.context": "x", "value": [{"id": "1", "displayName": "a"}]}
    assert recordings.compare(recorded, {"@odata.context": "y", "value": [{"id": "2", "displayName": "b"}]}) == []
    assert recordings.compare(recorded, {"@odata.context": "y", "value": [{"id": "2"}]}) == [
        "value[0] keys: missing ['displayName']"]
    assert recordings.compare(recorded, {"@odata.context": "y", "value": []}) == [
        "value[] has 0 items, recorded 1"]
    assert recordings.compare({"id": "1"}, {"id": "1", "surprise": 1}) == ["top-level keys: unexpected ['surprise']"]
    assert recordings.compare({"id": "1"}, {"id": "1", "uniqueName": None}) == []  # added to Graph since 2022
    error = {"error": {"code": "Request_ResourceNotFound", "message": "m", "innerError": {}}}
    other = {"error": {"code": "Request_BadRequest", "message": "m", "innerError": {}}}
    assert recordings.compare(error, other) == ["error code Request_BadRequest, recorded Request_ResourceNotFound"]
    assert recordings.compare(None, {"id": "1"}) == ["expected an empty body"]
