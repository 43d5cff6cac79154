"""State dirs: persistence across restarts, and several processes serving one state dir."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import httpx

from cypht_azure.emulator import Emulator

from .conftest import Graph, token_for

SERVE_SNIPPET = textwrap.dedent("""
    import json, sys
    from cypht_azure.emulator import Emulator
    emu = Emulator(sys.argv[1]).start()
    print(json.dumps({"base_url": emu.base_url}), flush=True)
    sys.stdin.read()
    emu.stop()
""")


def test_state_survives_a_restart(tmp_path: Path) -> None:
    with Emulator(tmp_path) as first:
        info = first.info
        graph = Graph(first, token_for(first, info["admin_client_id"], info["admin_client_secret"]))
        app = graph.post("/applications", json={"displayName": "kept"}).json()
        secret = graph.post(f"/applications/{app['id']}/addPassword", json={}).json()["secretText"]
        graph.post("/servicePrincipals", json={"appId": app["appId"]})
        token = graph.client.headers["Authorization"]
        ca_before = Path(info["ca_file"]).read_bytes()
        graph.close()
    assert json.loads((tmp_path / "state.json").read_text())["tenant"]["id"] == info["tenant_id"]
    assert secret not in (tmp_path / "state.json").read_text()  # only a hash of a Graph-made secret is kept

    with Emulator(tmp_path) as second:
        assert second.info["tenant_id"] == info["tenant_id"]
        assert second.info["admin_client_secret"] == info["admin_client_secret"]
        assert Path(second.info["ca_file"]).read_bytes() == ca_before  # certificates reused
        assert second.directory.get_application(app_id=app["appId"]) is not None
        again = Graph(second, token.split(" ", 1)[1])  # a token signed by the first instance
        assert again.get(f"/applications/{app['id']}").status_code == 200
        again.close()
        assert token_for(second, app["appId"], secret)  # the secret still works


def test_two_instances_in_one_process_share_state(tmp_path: Path) -> None:
    with Emulator(tmp_path) as a, Emulator(tmp_path) as b:
        info = a.info
        ga = Graph(a, token_for(a, info["admin_client_id"], info["admin_client_secret"]))
        gb = Graph(b, ga.client.headers["Authorization"].split(" ", 1)[1])
        created = ga.post("/applications", json={"displayName": "from-a"}).json()
        assert gb.get(f"/applications/{created['id']}").json()["displayName"] == "from-a"
        assert gb.patch(f"/applications/{created['id']}", json={"notes": "from b"}).status_code == 204
        assert ga.get(f"/applications/{created['id']}").json()["notes"] == "from b"
        ga.close()
        gb.close()


def _spawn(state_dir: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-c", SERVE_SNIPPET, str(state_dir)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, json.loads(line)["base_url"]


def test_two_processes_on_one_state_dir_stay_consistent(tmp_path: Path) -> None:
    procs = [_spawn(tmp_path) for _ in range(2)]
    try:
        state = json.loads((tmp_path / "state.json").read_text())
        seed = state["seed"]
        ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        tid = state["tenant"]["id"]
        # A token from process 0 is accepted by process 1: the signing key is part of the state.
        r = httpx.post(f"{procs[0][1]}/{tid}/oauth2/v2.0/token", verify=ctx, data={
            "grant_type": "client_credentials", "client_id": seed["admin_client_id"],
            "client_secret": seed["admin_client_secret"], "scope": "https://graph.microsoft.com/.default"})
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        errors: list[str] = []

        def create(base: str, worker: int) -> None:
            with httpx.Client(verify=ctx, headers=headers, timeout=20) as client:
                for i in range(15):
                    resp = client.post(f"{base}/v1.0/applications",
                                       json={"displayName": f"w{worker}-{i}", "tags": ["concurrency"]})
                    if resp.status_code != 201:
                        errors.append(resp.text)

        threads = [threading.Thread(target=create, args=(procs[w % 2][1], w)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        for _, base in procs:
            listed = httpx.get(f"{base}/v1.0/applications?$filter=tags/any(t:t eq 'concurrency')&$top=999",
                               headers=headers, verify=ctx).json()["value"]
            assert len(listed) == 60
            assert len({a["displayName"] for a in listed}) == 60
    finally:
        for proc, _ in procs:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(timeout=10)
    final = json.loads((tmp_path / "state.json").read_text())
    assert sum("concurrency" in a["tags"] for a in final["applications"].values()) == 60


def test_bulk_seed(emulator: Emulator, graph: Graph) -> None:
    apps = emulator.bulk_seed_applications(5000, tag="cypht-azure")
    assert len(apps) == 5000 and len({a["appId"] for a in apps}) == 5000
    stored = emulator.directory.get_application(object_id=apps[0]["id"])
    assert stored is not None and stored["tags"] == ["cypht-azure"]
    assert stored["passwordCredentials"][0]["secretText"] is None and stored["passwordCredentials"][0]["hint"]
    page = graph.get("/applications?$filter=tags/any(t:t eq 'cypht-azure')&$top=999").json()
    assert len(page["value"]) == 999 and "@odata.nextLink" in page


def test_bulk_seed_with_a_state_dir_is_one_write(tmp_path: Path) -> None:
    """Seeding is one transaction: the state file is written once for 5,000 applications, not per app
    (what keeps it fast; no clock is read here)."""
    with Emulator(tmp_path) as emu:
        store = emu.directory.store
        saves = []
        real_save = store._save
        store._save = lambda: (saves.append(1), real_save())[1]  # type: ignore[method-assign]
        emu.bulk_seed_applications(5000)
        assert len(saves) == 1
    with Emulator(tmp_path) as emu:
        assert sum("cypht-azure" in a["tags"] for a in emu.directory.applications()) == 5000
