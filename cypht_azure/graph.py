"""The Microsoft Graph gateway: the few calls cypht-azure makes, with its retry rules.

Requests are built by msgraph-sdk's request builders and sent through its request adapter
and middleware, but responses are read as plain JSON (kiota's NativeResponseHandler):
parsing into msgraph-sdk models would import ~1,200 model modules (about a second) for
the five fields we use.

Retries are ours, not kiota's, because the right answer depends on the call:
- 429/503/504 carry Retry-After and mean "not done": wait and retry any call;
- a 404 right after we created an object is replication lag: retry that call only;
- a dropped connection is retried for idempotent calls; addPassword is retried too, as a
  duplicate secret is recorded as the tool's own and cleaned up by the next run;
- a lost answer, or a 5xx to a write (which may come after the work was done), makes the retry's
  "not found" mean "done" for DELETE, restore and removePassword.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cypht_azure import trust

if TYPE_CHECKING:
    import httpx
    from kiota_abstractions.request_information import RequestInformation

log = logging.getLogger("cypht_azure.graph")

APP_SELECT = [
    "id", "appId", "displayName", "uniqueName", "signInAudience", "web", "api", "tags",
    "notes", "requiredResourceAccess", "passwordCredentials", "publisherDomain", "createdDateTime",
]
RETRY_STATUSES = {429, 503, 504}


@dataclass
class GraphError(Exception):
    """A Graph call failed. Carries Graph's own error code; never a request body."""

    status: int
    code: str
    message: str
    method: str = ""
    path: str = ""
    request_id: str | None = None

    def __str__(self) -> str:
        where = f"{self.method} {self.path}: " if self.method else ""
        rid = f" (request-id {self.request_id})" if self.request_id else ""
        return f"{where}{self.status} {self.code}: {self.message}{rid}"


class GraphUnavailable(Exception):
    """Graph could not be reached (network, TLS, time-out) after the allowed retries."""


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    after_lost: bool = False  # an earlier attempt's answer was lost: it may have done the work


@dataclass
class RetryPolicy:
    attempts: int = 5          # per call, all causes together
    max_wait: float = 60.0     # longest single Retry-After we honour
    replication_wait: float = 30.0  # total time we wait out replication lag on a fresh object
    backoff: float = 0.5


class TokenProvider:
    """Hands a token obtained once to kiota (kiota's own provider would ask for a second, CAE token)."""

    def __init__(self, get_token: Callable[[], str]) -> None:
        self._get_token = get_token

    async def get_authorization_token(self, uri: str, additional_authentication_context: Any = None) -> str:
        return self._get_token()

    def get_allowed_hosts_validator(self) -> Any:
        from kiota_abstractions.authentication import AllowedHostsValidator

        return AllowedHostsValidator([])


class Graph:
    def __init__(
        self,
        *,
        graph_url: str,
        get_token: Callable[[], str],
        ca_file: str | None = None,
        timeout: float = 30.0,
        policy: RetryPolicy | None = None,
        on_wait: Callable[[str, float], None] | None = None,
    ) -> None:
        import httpx
        from kiota_abstractions.authentication import BaseBearerTokenAuthenticationProvider
        from kiota_http.middleware.options import RetryHandlerOption
        from msgraph.graph_request_adapter import GraphRequestAdapter
        from msgraph.graph_request_adapter import options as graph_options
        from msgraph.graph_service_client import GraphServiceClient
        from msgraph_core import GraphClientFactory

        self.graph_url = graph_url.rstrip("/")
        self.policy = policy or RetryPolicy()
        self.on_wait = on_wait
        self.requests_sent = 0
        client = httpx.AsyncClient(verify=trust.ssl_context(ca_file), timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)))
        options = dict(graph_options)
        # Our retry rules replace kiota's (see module docstring).
        options[RetryHandlerOption.get_key()] = RetryHandlerOption(max_retries=0, should_retry=False)
        self._http = GraphClientFactory.create_with_default_middleware(client=client, options=options)
        auth = BaseBearerTokenAuthenticationProvider(TokenProvider(get_token))  # type: ignore[arg-type]
        self._adapter = GraphRequestAdapter(auth, client=self._http)
        self._adapter.base_url = self.graph_url
        self.client = GraphServiceClient(request_adapter=self._adapter)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Graph:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- transport -------------------------------------------------------------------

    def _request_info(self, method: str, builder: Any, *, query: dict[str, Any] | None = None,
                      body: Any = None, headers: dict[str, str] | None = None,
                      url: str | None = None) -> RequestInformation:
        from kiota_abstractions.method import Method
        from kiota_abstractions.native_response_handler import NativeResponseHandler
        from kiota_abstractions.request_information import RequestInformation
        from kiota_http.middleware.options import ResponseHandlerOption

        ri = RequestInformation(Method[method], builder.url_template, dict(builder.path_parameters))
        if url is not None:
            ri.url = url  # an @odata.nextLink, used as given
        for key, value in (query or {}).items():
            ri.query_parameters[key] = value
        ri.headers.try_add("Accept", "application/json")
        for key, value in (headers or {}).items():
            ri.headers.try_add(key, value)
        if body is not None:
            ri.set_stream_content(json.dumps(body).encode(), "application/json")
        ri.add_request_options([ResponseHandlerOption(NativeResponseHandler())])
        return ri

    async def call(
        self,
        method: str,
        builder: Any,
        *,
        label: str,
        query: dict[str, Any] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        url: str | None = None,
        fresh_object: bool = False,
        ok: tuple[int, ...] = (200, 201, 204),
        allow_404: bool = False,
        already_done: Callable[[int, GraphError, bool], bool] | None = None,
    ) -> Response:
        """Send one logical call, retrying as the module docstring says. `label` names it in logs and errors.

        `already_done(status, error, answer_lost)` says when an error answer means the work is done (a
        removed credential that is gone; a restore whose earlier attempt's answer was lost)."""
        import httpx

        attempt = 0
        answer_lost = False  # an earlier attempt may have been carried out without our hearing back
        replication_deadline = time.monotonic() + self.policy.replication_wait
        while True:
            attempt += 1
            ri = self._request_info(method, builder, query=query, body=body, headers=headers, url=url)
            started = time.monotonic()
            try:
                self.requests_sent += 1
                raw: httpx.Response = await self._adapter.send_no_response_content_async(ri, None)
            except (httpx.TransportError, ssl.SSLError) as exc:
                log.info("%s %s -> %s", method, label, type(exc).__name__)
                if _is_tls_failure(exc):
                    raise GraphUnavailable(
                        f"Microsoft Graph's TLS certificate at {self.graph_url} is not trusted. For a private "
                        "or emulated endpoint pass its CA with --ca-file; cypht-azure never turns "
                        "verification off."
                    ) from None
                answer_lost = True
                if attempt >= self.policy.attempts:
                    raise GraphUnavailable(
                        f"Could not reach Microsoft Graph at {self.graph_url} ({label}): {type(exc).__name__}. "
                        "Check the network or proxy and run the command again; it is safe to repeat."
                    ) from None
                await self._wait(f"{label}: connection problem, retrying", self.policy.backoff * 2 ** (attempt - 1))
                continue
            status = raw.status_code
            request_id = raw.headers.get("request-id")
            log.info("%s %s -> %s (request-id %s, %.0f ms)", method, _path_of(raw), status, request_id,
                     (time.monotonic() - started) * 1000)
            parsed = _json_or_none(raw)
            if status in ok:
                return Response(status, parsed, dict(raw.headers), after_lost=answer_lost)
            error = _graph_error(status, parsed, method, label, request_id)
            if already_done is not None and already_done(status, error, answer_lost):
                return Response(status, parsed, dict(raw.headers), after_lost=answer_lost)
            if status >= 500 and method != "GET":
                answer_lost = True  # a 5xx may come after the work was done: a retry's 404 then means done
            if status in RETRY_STATUSES and attempt < self.policy.attempts:
                delay = _retry_after(raw.headers.get("Retry-After"), self.policy.backoff * 2 ** (attempt - 1))
                if delay <= self.policy.max_wait:
                    why = "throttled by Microsoft Graph" if status == 429 else f"Graph answered {status}"
                    await self._wait(f"{label}: {why}, retrying", delay)
                    continue
            if status == 500 and attempt < min(3, self.policy.attempts):
                await self._wait(f"{label}: Graph answered 500, retrying", self.policy.backoff * 2 ** (attempt - 1))
                continue
            if status == 404 and method == "DELETE" and answer_lost:
                return Response(204, parsed, dict(raw.headers), after_lost=True)  # the lost attempt deleted it
            if status == 404 and error.code == "Request_ResourceNotFound":
                if fresh_object and time.monotonic() < replication_deadline:
                    await self._wait(f"{label}: waiting for the new registration to replicate",
                                     min(2.0, self.policy.backoff * 2 ** (attempt - 1)))
                    attempt = min(attempt, 1)  # replication waits are bounded by time, not attempts
                    continue
                if allow_404:
                    return Response(status, parsed, dict(raw.headers))
            raise error

    async def _wait(self, message: str, seconds: float) -> None:
        if self.on_wait is not None:
            self.on_wait(message, seconds)
        await asyncio.sleep(seconds)

    # ---- applications ----------------------------------------------------------------

    async def get_application(self, *, app_id: str | None = None, object_id: str | None = None,
                              unique_name: str | None = None, select: list[str] | None = None,
                              fresh_object: bool = False) -> dict[str, Any] | None:
        builder: Any
        if app_id is not None:
            builder, label = self.client.applications_with_app_id(app_id), f"get application {app_id}"
        elif unique_name is not None:
            builder, label = self.client.applications_with_unique_name(unique_name), f"get application {unique_name}"
        else:
            assert object_id is not None
            builder, label = self.client.applications.by_application_id(object_id), f"get application {object_id}"
        r = await self.call("GET", builder, label=label, query={"%24select": select or APP_SELECT},
                            allow_404=not fresh_object, fresh_object=fresh_object)
        return None if r.status == 404 else dict(r.body)

    async def create_application(self, body: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
        """POST /applications with the body's uniqueName: (the new app (201), or None when Graph refuses
        because another registration, live or deleted, holds that uniqueName; whether an earlier
        attempt's answer was lost, so that a refusal may be our own create answered twice).

        Unlike the upsert (PATCH /applications(uniqueName=...) with create-if-missing, whose 204 branch
        overwrites the registration that holds the name), a refused create changes nothing."""
        assert body.get("uniqueName"), "a create without uniqueName could make a duplicate on retry"
        r = await self.call("POST", self.client.applications, label="create application", body=body,
                            ok=(201, 400, 409))
        if r.status == 201:
            return dict(r.body), r.after_lost
        error = _graph_error(r.status, r.body, "POST", "create application", r.headers.get("request-id"))
        if unique_name_taken(r.status, error):
            return None, r.after_lost
        raise error

    async def update_application(self, object_id: str, patch: dict[str, Any], *, fresh_object: bool = False) -> None:
        await self.call("PATCH", self.client.applications.by_application_id(object_id),
                        label="update application", body=patch, fresh_object=fresh_object)

    async def add_password(self, object_id: str, *, display_name: str, end: str,
                           fresh_object: bool = False) -> dict[str, Any]:
        r = await self.call(
            "POST", self.client.applications.by_application_id(object_id).add_password,
            label="add client secret", fresh_object=fresh_object,
            body={"passwordCredential": {"displayName": display_name, "endDateTime": end}},
        )
        return dict(r.body)

    async def remove_password(self, object_id: str, key_id: str) -> bool:
        """True when removed now, False when the credential was already gone (a repeated run, or an
        earlier attempt whose answer was lost). Any other refusal raises GraphError."""
        r = await self.call(
            "POST", self.client.applications.by_application_id(object_id).remove_password,
            label="remove client secret", body={"keyId": key_id}, ok=(200, 204),
            already_done=lambda status, error, lost: _credential_gone(status, error),
        )
        return r.status in (200, 204)

    async def delete_application(self, object_id: str) -> None:
        await self.call("DELETE", self.client.applications.by_application_id(object_id), label="delete application")

    async def purge_deleted(self, object_id: str, *, fresh_object: bool = False) -> None:
        await self.call("DELETE", self.client.directory.deleted_items.by_directory_object_id(object_id),
                        label="permanently delete application", fresh_object=fresh_object)

    async def restore_deleted(self, object_id: str) -> dict[str, Any] | None:
        """The restored application; None when an earlier attempt restored it and its answer was lost."""
        r = await self.call("POST", self.client.directory.deleted_items.by_directory_object_id(object_id).restore,
                            label="restore application", already_done=lambda status, error, lost: lost and status == 404)
        return None if r.after_lost and r.status == 404 else dict(r.body)

    async def list_applications(self, *, filter: str, select: list[str], top: int = 999,
                                headers: dict[str, str] | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of applications; follows @odata.nextLink."""
        builder = self.client.applications
        url: str | None = None
        query: dict[str, Any] | None = {"%24filter": filter, "%24select": select, "%24top": top}
        while True:
            r = await self.call("GET", builder, label="list applications", query=query, url=url, headers=headers)
            yield list(r.body.get("value", []))
            next_link = r.body.get("@odata.nextLink")
            if not next_link:
                return
            if not same_origin(str(next_link), self.graph_url):
                # The token goes with every request: never to a host other than the Graph we called.
                raise GraphUnavailable(
                    f"Microsoft Graph answered with a next-page link to another host ({_origin(str(next_link))}); "
                    f"cypht-azure follows links only on {_origin(self.graph_url)}.")
            url, query = next_link, None

    # ---- service principals ------------------------------------------------------------

    async def get_service_principal(self, app_id: str) -> dict[str, Any] | None:
        """The app's service principal (enterprise application) in this tenant, or None."""
        r = await self.call("GET", self.client.service_principals_with_app_id(app_id),
                            label=f"get service principal {app_id}", query={"%24select": ["id", "appId"]},
                            allow_404=True)
        return None if r.status == 404 else dict(r.body)

    async def create_service_principal(self, app_id: str, *, fresh_object: bool = False) -> bool:
        """Create the app's service principal in this tenant: True when created, False when one exists (409).

        A registration created moments ago may not be visible yet: Graph then answers 400 "does not
        reference a valid application object"; with ``fresh_object`` that is retried like a 404."""
        deadline = time.monotonic() + (self.policy.replication_wait if fresh_object else 0.0)
        attempt = 0
        while True:
            attempt += 1
            r = await self.call("POST", self.client.service_principals, label="create service principal",
                                body={"appId": app_id, "accountEnabled": True}, ok=(201, 400, 409),
                                fresh_object=fresh_object)
            error = _graph_error(r.status, r.body, "POST", "create service principal", r.headers.get("request-id"))
            if r.status == 201:
                return True
            if r.status == 409 and error.code == "Request_MultipleObjectsWithSameKeyValue":
                return False
            if r.status == 400 and "valid application object" in error.message and time.monotonic() < deadline:
                await self._wait("create service principal: waiting for the new registration to replicate",
                                 min(2.0, self.policy.backoff * 2 ** (attempt - 1)))
                continue
            raise error

    async def delete_service_principal(self, app_id: str) -> bool:
        """False when there was none."""
        r = await self.call("DELETE", self.client.service_principals_with_app_id(app_id),
                            label="delete service principal", allow_404=True)
        return r.status != 404

    async def list_deleted_applications(self, *, filter: str, select: list[str]) -> list[dict[str, Any]]:
        builder = self.client.directory.deleted_items.graph_application
        r = await self.call("GET", builder, label="list deleted applications",
                            query={"%24filter": filter, "%24select": select})
        return list(r.body.get("value", []))


def _origin(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{parts.port or 443}"


def same_origin(link: str, graph_url: str) -> bool:
    """Whether an @odata.nextLink points at the Graph endpoint we called (scheme, host and port)."""
    return link.lower().startswith("https://") and _origin(link) == _origin(graph_url)


def unique_name_taken(status: int, error: GraphError) -> bool:
    """Graph's refusal of a create whose uniqueName another registration (live or soft-deleted) holds:
    400 Request_BadRequest "Another object with the same value for property uniqueName already exists."
    (docs/emulator.md, "uniqueName"); ObjectConflict and the 409 of other key clashes are taken alike."""
    if status == 409 and error.code == "Request_MultipleObjectsWithSameKeyValue":
        return True
    if status == 400 and error.code == "ObjectConflict":
        return True
    text = error.message.lower()
    return status == 400 and "uniquename" in text and "already exists" in text


def _credential_gone(status: int, error: GraphError) -> bool:
    """removePassword's answers for a keyId the app does not have (Graph has used 404 and 400)."""
    return status == 404 or (status == 400 and "keyid" in error.message.lower())


def _path_of(raw: httpx.Response) -> str:
    return raw.request.url.raw_path.decode("ascii", "replace").split("?")[0]


def _json_or_none(raw: httpx.Response) -> Any:
    if not raw.content:
        return None
    try:
        return raw.json()
    except ValueError:
        return None


def _graph_error(status: int, body: Any, method: str, label: str, request_id: str | None) -> GraphError:
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        return GraphError(status, str(err.get("code", "")), str(err.get("message", "")), method, label, request_id)
    return GraphError(status, "UnexpectedResponse", f"Graph answered {status} without an error body",
                      method, label, request_id)


def _retry_after(value: str | None, default: float) -> float:
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            from email.utils import parsedate_to_datetime

            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
            except (TypeError, ValueError):
                pass
    return default


def _is_tls_failure(exc: BaseException) -> bool:
    text = repr(exc) + repr(exc.__cause__) + repr(exc.__context__)
    return "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text
