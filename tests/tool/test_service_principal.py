"""The app's service principal: provision creates it (a step of the plan), rotate-secret and
status --verify-secret create it when it is missing, deprovision removes it; a secret counts as
working only when the token endpoint issues a token (AADSTS7000229 is not a pass)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.tool.conftest import Cli, graph_requests, token_requests
from tests.tool.test_provision import provision, read_env

SP_PATH = "/v1.0/servicePrincipals"


def sps(emulator: Any, client_id: str) -> list[dict[str, Any]]:
    return [s for s in emulator.directory.service_principals() if s["appId"] == client_id]


def calls(emulator: Any) -> list[tuple[str, str]]:
    return [(m, p.split("?")[0]) for m, p in graph_requests(emulator)]


def drop_sp(emulator: Any, client_id: str) -> None:
    from cypht_azure.emulator.models import SYSTEM

    emulator.directory.sp_delete(SYSTEM, ("appId", client_id))


def grants(emulator: Any) -> list[str]:
    return [str(e.grant_type) for e in token_requests(emulator)]


def test_fresh_provision_creates_the_service_principal_as_a_step(cli: Cli, emulator: Any, env_file: Path) -> None:
    env_file.parent.mkdir()
    emulator.clear_log()
    r = provision(cli, env_file)
    assert r.returncode == 0, r
    client_id = r.json["client_id"]
    assert len(sps(emulator, client_id)) == 1
    steps = [s["step"] for s in r.json["steps"]]
    assert steps.index("CreateServicePrincipal") < steps.index("WriteEnv")
    assert ("POST", SP_PATH) in calls(emulator)
    assert r.json["secret_verified"] is True
    # the secret check got a token: one client-credentials request with the app's own ID, answered 200
    checks = [e for e in token_requests(emulator) if e.client_id == client_id]
    assert [e.status for e in checks][-1] == 200


def test_rerun_keeps_the_service_principal(cli: Cli, emulator: Any, env_file: Path) -> None:
    env_file.parent.mkdir()
    client_id = provision(cli, env_file).json["client_id"]
    before = sps(emulator, client_id)
    emulator.clear_log()
    again = provision(cli, env_file)
    assert again.returncode == 0, again
    assert not again.json["changed"]
    assert sps(emulator, client_id) == before
    assert all(m == "GET" for m, _ in calls(emulator)), calls(emulator)
    assert ("GET", f"{SP_PATH}(appId='{client_id}')") in calls(emulator)


def test_provision_repairs_a_missing_service_principal(cli: Cli, emulator: Any, env_file: Path) -> None:
    env_file.parent.mkdir()
    client_id = provision(cli, env_file).json["client_id"]
    drop_sp(emulator, client_id)
    dry = provision(cli, env_file, "--dry-run")
    assert [s["step"] for s in dry.json["steps"]] == ["CreateServicePrincipal"]
    assert sps(emulator, client_id) == []
    r = provision(cli, env_file)
    assert r.returncode == 0 and r.json["changed"], r
    assert len(sps(emulator, client_id)) == 1


def test_rotate_and_status_create_a_missing_service_principal(cli: Cli, emulator: Any, env_file: Path) -> None:
    env_file.parent.mkdir()
    client_id = provision(cli, env_file).json["client_id"]
    drop_sp(emulator, client_id)
    status = cli("status", "--env-file", str(env_file), "--verify-secret", "--json")
    assert status.returncode == 0, status
    assert status.json["secret_verified"] is True
    assert len(sps(emulator, client_id)) == 1
    drop_sp(emulator, client_id)
    rotated = cli("rotate-secret", "--env-file", str(env_file), "--json")
    assert rotated.returncode == 0, rotated
    assert rotated.json["secret_verified"] is True
    assert len(sps(emulator, client_id)) == 1  # created when the new secret's check met AADSTS7000229


def test_caller_who_may_not_create_service_principals_is_told_which_role(cli: Cli, emulator: Any,
                                                                        env_file: Path) -> None:
    env_file.parent.mkdir()
    emulator.faults.add(method="POST", path=f"^{SP_PATH}$", status=403, times=None)
    r = provision(cli, env_file)
    assert r.returncode == 4, r
    message = r.json["error"]["message"] + " " + (r.json["error"]["hint"] or "")
    assert "service principal" in message
    assert "Application.ReadWrite.All" in message and "Cloud Application Administrator" in message
    assert not env_file.exists() or "OUTLOOK_CLIENT_SECRET" not in env_file.read_text()
    # the registration is kept for the next run to reuse, without a secret: the one added alongside was taken back
    apps = [a for a in emulator.directory.applications() if "cypht-azure" in (a.get("tags") or [])]
    assert [a.get("passwordCredentials") for a in apps] == [[]]
    emulator.faults.clear()
    again = provision(cli, env_file)
    assert again.returncode == 0, again
    assert again.json["client_id"] == apps[0]["appId"] and len(sps(emulator, apps[0]["appId"])) == 1


def test_deprovision_leaves_no_service_principal(cli: Cli, emulator: Any, env_file: Path) -> None:
    env_file.parent.mkdir()
    client_id = provision(cli, env_file).json["client_id"]
    emulator.clear_log()
    r = cli("deprovision", "--env-file", str(env_file), "--yes", "--json")
    assert r.returncode == 0, r
    assert sps(emulator, client_id) == []
    assert ("DELETE", f"{SP_PATH}(appId='{client_id}')") in calls(emulator)


def test_token_endpoint_answers_7000229_without_and_a_token_with_the_service_principal(
        cli: Cli, emulator: Any, env_file: Path) -> None:
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import ClientSecretCredential

    env_file.parent.mkdir()
    client_id = provision(cli, env_file).json["client_id"]
    secret = read_env(env_file)["OUTLOOK_CLIENT_SECRET"]
    info = emulator.info

    def token() -> str:
        cred = ClientSecretCredential(info["tenant_id"], client_id, secret, authority=info["authority_host"],
                                      disable_instance_discovery=True, connection_verify=info["ca_file"],
                                      retry_total=0)
        try:
            cred.get_token("https://graph.microsoft.com/.default")
            return "token"
        except ClientAuthenticationError as exc:
            return "AADSTS7000229" if "AADSTS7000229" in str(exc) else str(exc)

    assert token() == "token"
    drop_sp(emulator, client_id)
    assert token() == "AADSTS7000229"
