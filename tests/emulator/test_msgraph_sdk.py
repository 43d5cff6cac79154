"""The real msgraph-sdk (kiota + httpx) against the emulator, wired as docs/emulator.md describes."""

from __future__ import annotations

import asyncio
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable

import httpx
import pytest
from azure.identity import ClientSecretCredential
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from kiota_http.middleware.options import RetryHandlerOption
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.applications.applications_request_builder import ApplicationsRequestBuilder
from msgraph.generated.applications.item.add_password.add_password_post_request_body import (
    AddPasswordPostRequestBody,
)
from msgraph.generated.applications.item.remove_password.remove_password_post_request_body import (
    RemovePasswordPostRequestBody,
)
from msgraph.generated.models.application import Application
from msgraph.generated.models.federated_identity_credential import FederatedIdentityCredential
from msgraph.generated.models.o_auth2_permission_grant import OAuth2PermissionGrant
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.password_credential import PasswordCredential
from msgraph.generated.models.service_principal import ServicePrincipal
from msgraph.graph_request_adapter import options as graph_options
from msgraph_core import GraphClientFactory

from cypht_azure.emulator import Emulator

Scenario = Callable[[GraphServiceClient], Awaitable[None]]


def run(emu: Emulator, scenario: Scenario, retries: int = 0) -> None:
    info = emu.info
    cred = ClientSecretCredential(info["tenant_id"], info["admin_client_id"], info["admin_client_secret"],
                                  authority=info["authority_host"], disable_instance_discovery=True,
                                  connection_verify=info["ca_file"])

    async def main() -> None:
        http = httpx.AsyncClient(verify=ssl.create_default_context(cafile=info["ca_file"]),
                                 timeout=httpx.Timeout(10, connect=5))
        options = dict(graph_options)
        options[RetryHandlerOption.get_key()] = RetryHandlerOption(delay=0, max_retries=retries)
        http = GraphClientFactory.create_with_default_middleware(client=http, options=options)
        auth = AzureIdentityAuthenticationProvider(cred, scopes=["https://graph.microsoft.com/.default"])
        adapter = GraphRequestAdapter(auth, client=http)
        adapter.base_url = info["graph_url"]
        try:
            await scenario(GraphServiceClient(request_adapter=adapter))
        finally:
            await http.aclose()

    asyncio.run(main())


def test_application_lifecycle(emulator: Emulator) -> None:
    async def scenario(client: GraphServiceClient) -> None:
        app = await client.applications.post(Application(display_name="cypht", tags=["cypht-azure"],
                                                         sign_in_audience="AzureADMyOrg"))
        assert app is not None and app.id and app.app_id and app.sign_in_audience == "AzureADMyOrg"
        pw = await client.applications.by_application_id(app.id).add_password.post(
            AddPasswordPostRequestBody(password_credential=PasswordCredential(display_name="cypht")))
        assert pw is not None and isinstance(pw.key_id, uuid.UUID) and pw.secret_text and pw.hint == pw.secret_text[:3]
        got = await client.applications_with_app_id(app.app_id).get()
        assert got is not None and got.id == app.id
        assert got.password_credentials and got.password_credentials[0].secret_text is None
        await client.applications.by_application_id(app.id).remove_password.post(
            RemovePasswordPostRequestBody(key_id=pw.key_id))
        got = await client.applications.by_application_id(app.id).get()
        assert got is not None and got.password_credentials == []
        await client.applications.by_application_id(app.id).patch(Application(notes="managed by cypht-azure"))
        got = await client.applications.by_application_id(app.id).get()
        assert got is not None and got.notes == "managed by cypht-azure"

        await client.applications.by_application_id(app.id).delete()
        with pytest.raises(ODataError) as missing:
            await client.applications.by_application_id(app.id).get()
        assert missing.value.response_status_code == 404
        assert missing.value.error is not None and missing.value.error.code == "Request_ResourceNotFound"
        deleted = await client.directory.deleted_items.graph_application.get()
        assert deleted is not None and [a.id for a in deleted.value or []] == [app.id]
        restored = await client.directory.deleted_items.by_directory_object_id(app.id).restore.post()
        assert restored is not None and restored.id == app.id
        assert (await client.applications.by_application_id(app.id).get()) is not None
        await client.applications.by_application_id(app.id).delete()
        await client.directory.deleted_items.by_directory_object_id(app.id).delete()
        deleted = await client.directory.deleted_items.graph_application.get()
        assert deleted is not None and deleted.value == []

    run(emulator, scenario)
    paths = [(e.method, e.path.split("?")[0], e.status) for e in emulator.request_log if e.kind == "graph"]
    assert ("POST", "/v1.0/applications", 201) in paths


def test_upsert_by_unique_name(emulator: Emulator) -> None:
    async def scenario(client: GraphServiceClient) -> None:
        builder = client.applications_with_unique_name("cypht-prod")
        with pytest.raises(ODataError) as missing:
            await builder.patch(Application(display_name="cypht"))
        assert missing.value.response_status_code == 404
        cfg = RequestConfiguration()
        cfg.headers.add("Prefer", "create-if-missing")
        created = await builder.patch(Application(display_name="cypht"), request_configuration=cfg)
        assert created is not None and created.unique_name == "cypht-prod"
        updated = await builder.patch(Application(display_name="cypht v2"), request_configuration=cfg)
        assert updated is None  # 204
        got = await builder.get()
        assert got is not None and got.display_name == "cypht v2" and got.id == created.id

    run(emulator, scenario)


def test_list_filter_select_top_and_paging(emulator: Emulator) -> None:
    emulator.bulk_seed_applications(7, tag="cypht-azure")
    emulator.directory.create_application(displayName="unrelated")

    async def scenario(client: GraphServiceClient) -> None:
        query = ApplicationsRequestBuilder.ApplicationsRequestBuilderGetQueryParameters(
            filter="tags/any(t:t eq 'cypht-azure')", select=["id", "displayName", "tags"], top=3)
        cfg = RequestConfiguration(query_parameters=query)
        page = await client.applications.get(request_configuration=cfg)
        names: list[str] = []
        pages = 0
        while page is not None:
            pages += 1
            names += [a.display_name or "" for a in page.value or []]
            assert all(a.app_id is None for a in page.value or [])  # not selected
            if not page.odata_next_link:
                break
            page = await client.applications.with_url(page.odata_next_link).get()
        assert pages == 3 and len(names) == 7 and len(set(names)) == 7
        assert all(n.startswith("cypht-azure-seed-") for n in names)
        query = ApplicationsRequestBuilder.ApplicationsRequestBuilderGetQueryParameters(
            filter="startswith(displayName,'unrel')")
        found = await client.applications.get(RequestConfiguration(query_parameters=query))
        assert found is not None and [a.display_name for a in found.value or []] == ["unrelated"]

    run(emulator, scenario)


def test_service_principal_grant_and_federated_credentials(emulator: Emulator) -> None:
    async def scenario(client: GraphServiceClient) -> None:
        app = await client.applications.post(Application(display_name="cypht"))
        assert app is not None and app.id and app.app_id
        sp = await client.service_principals.post(ServicePrincipal(app_id=app.app_id))
        assert sp is not None and sp.service_principal_names == [app.app_id]
        with pytest.raises(ODataError) as dup:
            await client.service_principals.post(ServicePrincipal(app_id=app.app_id))
        assert dup.value.response_status_code == 409
        assert dup.value.error is not None and dup.value.error.code == "Request_MultipleObjectsWithSameKeyValue"

        graph_sp = await client.service_principals_with_app_id("00000003-0000-0000-c000-000000000000").get()
        assert graph_sp is not None and graph_sp.display_name == "Microsoft Graph"
        scopes = {s.value: str(s.id) for s in graph_sp.oauth2_permission_scopes or []}
        assert scopes["IMAP.AccessAsUser.All"] == "652390e4-393a-48de-9484-05f9b1212954"
        assert scopes["SMTP.Send"] == "258f6531-6087-4cc4-bb90-092c5fb3ed3f"
        grant = OAuth2PermissionGrant(client_id=sp.id, consent_type="AllPrincipals", resource_id=graph_sp.id,
                                      scope="openid offline_access IMAP.AccessAsUser.All SMTP.Send")
        made = await client.oauth2_permission_grants.post(grant)
        assert made is not None and made.id is not None and len(made.id) == 43
        with pytest.raises(ODataError) as again:
            await client.oauth2_permission_grants.post(grant)
        assert again.value.response_status_code == 409
        assert again.value.error is not None and again.value.error.message == "Permission entry already exists."

        fics = client.applications.by_application_id(app.id).federated_identity_credentials
        fic = await fics.post(FederatedIdentityCredential(
            name="github-main", issuer="https://token.actions.githubusercontent.com",
            subject="repo:cypht-org/cypht:ref:refs/heads/master", audiences=["api://AzureADTokenExchange"]))
        assert fic is not None and fic.id and fic.description is None
        listed = await fics.get()
        assert listed is not None and [f.name for f in listed.value or []] == ["github-main"]
        await fics.by_federated_identity_credential_id(fic.id).delete()
        listed = await fics.get()
        assert listed is not None and listed.value == []

    run(emulator, scenario)


def test_sdk_retries_a_throttled_call_after_retry_after(emulator: Emulator) -> None:
    emulator.faults.add(method="POST", path=r"/addPassword$", status=429, retry_after=1, times=1)

    async def scenario(client: GraphServiceClient) -> None:
        app = await client.applications.post(Application(display_name="throttled"))
        assert app is not None and app.id
        started = time.monotonic()
        pw = await client.applications.by_application_id(app.id).add_password.post(AddPasswordPostRequestBody())
        assert pw is not None and pw.secret_text
        assert time.monotonic() - started >= 0.9

    run(emulator, scenario, retries=2)
    statuses = [e.status for e in emulator.request_log if e.path.endswith("/addPassword")]
    assert statuses == [429, 200]


