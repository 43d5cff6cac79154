"""Real azure-identity credentials against the emulator's token endpoint (no mocks)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from pathlib import Path

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import (
    CertificateCredential,
    ClientSecretCredential,
    DeviceCodeCredential,
    EnvironmentCredential,
    WorkloadIdentityCredential,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from cypht_azure.emulator import Emulator

from .conftest import Graph

GRAPH_SCOPE = "https://graph.microsoft.com/.default"


def _claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def _common(emu: Emulator) -> dict[str, object]:
    return {"authority": emu.info["authority_host"], "disable_instance_discovery": True,
            "connection_verify": emu.info["ca_file"], "retry_total": 0}


def _rsa_certificate_pem() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cypht-azure test"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Cypht")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert_pem, key_pem


def test_client_secret_credential_gets_an_app_token(emulator: Emulator) -> None:
    info = emulator.info
    cred = ClientSecretCredential(info["tenant_id"], info["admin_client_id"], info["admin_client_secret"],
                                  **_common(emulator))
    token = cred.get_token(GRAPH_SCOPE)
    claims = _claims(token.token)
    assert claims["aud"] == "https://graph.microsoft.com"
    assert claims["appid"] == info["admin_client_id"] and claims["idtyp"] == "app"
    assert claims["tid"] == info["tenant_id"]
    assert "Application.ReadWrite.All" in claims["roles"]  # type: ignore[operator]
    assert token.expires_on > time.time() + 3000
    kinds = [(e.kind, e.status) for e in emulator.request_log]
    assert kinds == [("openid", 200), ("token", 200)]

    wrong = ClientSecretCredential(info["tenant_id"], info["admin_client_id"], "not-the-secret", **_common(emulator))
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        wrong.get_token(GRAPH_SCOPE)


def test_expired_secret_is_refused_with_7000222(emulator: Emulator, graph: Graph) -> None:
    app = graph.post("/applications", json={"displayName": "expiring"}).json()
    graph.post("/servicePrincipals", json={"appId": app["appId"]})
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    _, secret = emulator.directory.add_password(app["id"], display_name="old", start=past - dt.timedelta(days=30),
                                                end=past)
    cred = ClientSecretCredential(emulator.info["tenant_id"], app["appId"], secret, **_common(emulator))
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000222"):
        cred.get_token(GRAPH_SCOPE)


def test_app_without_service_principal_cannot_get_tokens(emulator: Emulator, graph: Graph) -> None:
    app = graph.post("/applications", json={"displayName": "no-sp"}).json()
    secret = graph.post(f"/applications/{app['id']}/addPassword", json={}).json()["secretText"]
    cred = ClientSecretCredential(emulator.info["tenant_id"], app["appId"], secret, **_common(emulator))
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000229"):
        cred.get_token(GRAPH_SCOPE)
    graph.post("/servicePrincipals", json={"appId": app["appId"]})
    assert _claims(cred.get_token(GRAPH_SCOPE).token)["appid"] == app["appId"]


def test_certificate_credential_with_a_registered_rsa_certificate(emulator: Emulator, tmp_path: Path) -> None:
    cert_pem, key_pem = _rsa_certificate_pem()
    client_id, _ = emulator.directory.add_app_identity("cert-app", roles=["Application.Read.All"],
                                                       certificate_pem=cert_pem)
    pem = tmp_path / "cert.pem"
    pem.write_bytes(key_pem + cert_pem)
    cred = CertificateCredential(emulator.info["tenant_id"], client_id, certificate_path=str(pem),
                                 **_common(emulator))
    claims = _claims(cred.get_token(GRAPH_SCOPE).token)
    assert claims["appid"] == client_id and claims["roles"] == ["Application.Read.All"]

    other_cert, other_key = _rsa_certificate_pem()
    stranger = tmp_path / "other.pem"
    stranger.write_bytes(other_key + other_cert)
    cred = CertificateCredential(emulator.info["tenant_id"], client_id, certificate_path=str(stranger),
                                 **_common(emulator))
    with pytest.raises(ClientAuthenticationError, match="AADSTS700027"):
        cred.get_token(GRAPH_SCOPE)


def test_environment_credential(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    info = emulator.info
    monkeypatch.setenv("AZURE_TENANT_ID", info["tenant_id"])
    monkeypatch.setenv("AZURE_CLIENT_ID", info["admin_client_id"])
    monkeypatch.setenv("AZURE_CLIENT_SECRET", info["admin_client_secret"])
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", info["authority_host"])
    cred = EnvironmentCredential(disable_instance_discovery=True, connection_verify=info["ca_file"])
    assert _claims(cred.get_token(GRAPH_SCOPE).token)["appid"] == info["admin_client_id"]


def test_device_code_credential_signs_the_admin_user_in(emulator: Emulator) -> None:
    info = emulator.info
    prompts: list[str] = []
    cred = DeviceCodeCredential(
        client_id=info["device_code_client_id"], tenant_id=info["tenant_id"],
        prompt_callback=lambda uri, code, expires: prompts.append(code), **_common(emulator),
    )
    token = cred.get_token(GRAPH_SCOPE)
    claims = _claims(token.token)
    assert claims["idtyp"] == "user" and claims["upn"] == info["admin_user"]
    assert prompts and len(prompts[0]) == 9
    record = cred._auth_record  # built from id_token + client_info
    assert record is not None and record.username == info["admin_user"]
    assert [e.kind for e in emulator.request_log] == ["openid", "devicecode", "token"]


def test_device_code_waits_for_approval_and_can_be_declined(emulator: Emulator) -> None:
    info = emulator.info
    emulator.directory.set_device_code_approver(delay_seconds=1.2, interval=1)
    cred = DeviceCodeCredential(client_id=info["device_code_client_id"], tenant_id=info["tenant_id"],
                                prompt_callback=lambda *a: None, **_common(emulator))
    started = time.monotonic()
    cred.get_token(GRAPH_SCOPE)
    assert time.monotonic() - started >= 1.0
    polls = [e.status for e in emulator.request_log if e.kind == "token"]
    assert polls[0] == 400 and polls[-1] == 200  # authorization_pending, then the token

    emulator.directory.set_device_code_approver(delay_seconds=0, decline=True)
    declined = DeviceCodeCredential(client_id=info["device_code_client_id"], tenant_id=info["tenant_id"],
                                    prompt_callback=lambda *a: None, **_common(emulator))
    with pytest.raises(ClientAuthenticationError):
        declined.get_token(GRAPH_SCOPE)


def test_workload_identity_credential_with_a_federated_credential(
    emulator: Emulator, graph: Graph, tmp_path: Path
) -> None:
    app = graph.post("/applications", json={"displayName": "ci-workload"}).json()
    graph.post("/servicePrincipals", json={"appId": app["appId"]})
    fic = {"name": "github-main", "issuer": "https://token.actions.githubusercontent.com",
           "subject": "repo:cypht-org/cypht:ref:refs/heads/master", "audiences": ["api://AzureADTokenExchange"]}
    assert graph.post(f"/applications/{app['id']}/federatedIdentityCredentials", json=fic).status_code == 201

    def external_token(subject: str) -> str:
        def enc(obj: dict[str, object]) -> str:
            return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
        now = int(time.time())
        claims = {"iss": fic["issuer"], "sub": subject, "aud": "api://AzureADTokenExchange", "iat": now,
                  "exp": now + 600}
        return f"{enc({'alg': 'RS256', 'typ': 'JWT'})}.{enc(claims)}.c2lnbmF0dXJl"  # issuer's keys not needed

    token_file = tmp_path / "federated-token"
    token_file.write_text(external_token(str(fic["subject"])))
    cred = WorkloadIdentityCredential(tenant_id=emulator.info["tenant_id"], client_id=app["appId"],
                                      token_file_path=str(token_file), authority=emulator.info["authority_host"],
                                      connection_verify=emulator.info["ca_file"])
    assert _claims(cred.get_token(GRAPH_SCOPE).token)["appid"] == app["appId"]

    token_file.write_text(external_token("repo:someone/else:ref:refs/heads/main"))
    other = WorkloadIdentityCredential(tenant_id=emulator.info["tenant_id"], client_id=app["appId"],
                                       token_file_path=str(token_file), authority=emulator.info["authority_host"],
                                       connection_verify=emulator.info["ca_file"])
    with pytest.raises(ClientAuthenticationError, match="AADSTS70021"):
        other.get_token(GRAPH_SCOPE)


def test_refresh_token_grant_after_device_code(emulator: Emulator) -> None:
    info = emulator.info
    base = f"{info['authority_host']}/{info['tenant_id']}/oauth2/v2.0"
    verify = info["ca_file"]
    form = {"client_id": info["device_code_client_id"], "scope": "https://outlook.office.com/IMAP.AccessAsUser.All "
            "https://outlook.office.com/SMTP.Send offline_access openid profile"}
    with httpx.Client(verify=__import__("ssl").create_default_context(cafile=verify)) as client:
        code = client.post(f"{base}/devicecode", data=form).json()
        assert code["verification_uri"] == "https://microsoft.com/devicelogin" and code["expires_in"] == 900
        first = client.post(f"{base}/token", data={"grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                                                   "client_id": form["client_id"], "device_code": code["device_code"],
                                                   "client_info": "1"}).json()
        assert _claims(first["access_token"])["aud"] == "https://outlook.office.com"
        assert _claims(first["access_token"])["scp"] == "IMAP.AccessAsUser.All SMTP.Send"
        assert json.loads(base64.urlsafe_b64decode(first["client_info"] + "==")) == {
            "uid": _claims(first["id_token"])["oid"], "utid": info["tenant_id"]}
        again = client.post(f"{base}/token", data={"grant_type": "refresh_token", "client_id": form["client_id"],
                                                   "refresh_token": first["refresh_token"],
                                                   "scope": form["scope"]})
        assert again.status_code == 200 and "access_token" in again.json()
        reused = client.post(f"{base}/token", data={"grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                                                    "client_id": form["client_id"], "device_code": code["device_code"]})
        assert reused.status_code == 400 and reused.json()["error"] == "bad_verification_code"


def test_managed_identity_credential_at_the_app_service_endpoint(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from azure.identity import ManagedIdentityCredential

    client_id, _ = emulator.directory.add_app_identity("app-service-identity", roles=["Application.Read.All"])
    monkeypatch.setenv("IDENTITY_ENDPOINT", emulator.info["authority_host"] + "/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "from-the-platform")
    cred = ManagedIdentityCredential(client_id=client_id, connection_verify=emulator.info["ca_file"])
    claims = _claims(cred.get_token(GRAPH_SCOPE).token)
    assert claims["appid"] == client_id and claims["roles"] == ["Application.Read.All"]
    assert claims["aud"] == "https://graph.microsoft.com" and claims["tid"] == emulator.info["tenant_id"]

    stranger = ManagedIdentityCredential(client_id="00000000-0000-0000-0000-000000000001",
                                         connection_verify=emulator.info["ca_file"])
    with pytest.raises(ClientAuthenticationError, match="No managed identity"):
        stranger.get_token(GRAPH_SCOPE)
