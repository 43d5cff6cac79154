"""What travels over HTTP: the parsed request, the response to send, and their renderers."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from . import exceptions as exc

GRAPH_JSON = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
LOGIN_JSON = "application/json; charset=utf-8"


@dataclass
class Request:
    method: str
    raw_path: str  # as sent, with the query string
    headers: dict[str, str]  # lower-case names
    body: bytes
    client_ip: str
    host: str
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def path(self) -> str:
        """Percent-decoded path with repeated slashes collapsed (the SDK sends ``//applications``)."""
        path = unquote(urlsplit(self.raw_path).path)
        while "//" in path:
            path = path.replace("//", "/")
        return path.rstrip("/") or "/"

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.raw_path).query, keep_blank_values=True))

    @property
    def base_url(self) -> str:
        return f"https://{self.host}"

    @property
    def client_request_id(self) -> str:
        return self.headers.get("client-request-id") or self.request_id

    def json(self) -> dict[str, Any]:
        if not self.body.strip():
            return {}
        try:
            value = json.loads(self.body)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise exc.BadRequest("Unable to read JSON request payload. Please ensure Content-Type header is set "
                                 "and payload is of valid JSON format.", code="BadRequest") from error
        if not isinstance(value, dict):
            raise exc.BadRequest("Invalid request body.", code="BadRequest")
        return value

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    payload: Any = None  # the JSON object behind ``body``, for the fault layer to inspect
    action: str | None = None  # "drop": close the connection without answering
    error_code: str | None = None  # a refusal the body does not name in JSON (an HTML error page): for the log

    @classmethod
    def json(cls, status: int, payload: Any, content_type: str = GRAPH_JSON, **headers: str) -> Response:
        body = json.dumps(payload, separators=(",", ":")).encode()
        return cls(status, {"Content-Type": content_type, **headers}, body, payload)

    @classmethod
    def empty(cls, status: int = 204, **headers: str) -> Response:
        return cls(status, dict(headers))

    @classmethod
    def text(cls, status: int, text: str) -> Response:
        return cls(status, {"Content-Type": "text/plain"}, text.encode())

    @classmethod
    def html(cls, status: int, body: bytes, **headers: str) -> Response:
        return cls(status, {"Content-Type": "text/html; charset=utf-8", **headers}, body)

    @classmethod
    def redirect(cls, location: str, **headers: str) -> Response:
        return cls(302, {"Location": location, **headers})


def graph_headers(req: Request, resource_units: int | None = None) -> dict[str, str]:
    headers = {
        "Cache-Control": "no-cache",
        "OData-Version": "4.0",
        "request-id": req.request_id,
        "client-request-id": req.client_request_id,
        "Strict-Transport-Security": "max-age=31536000",
        "x-ms-ags-diagnostic": json.dumps({"ServerInfo": {"DataCenter": "Local Emulator", "Slice": "E", "Ring": "5",
                                                          "ScaleUnit": "000", "RoleInstance": "EMULATOR"}}),
    }
    if resource_units is not None:
        headers["x-ms-resource-unit"] = str(resource_units)
    return headers


def graph_error(req: Request, error: exc.GraphError) -> Response:
    inner: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
        "request-id": req.request_id,
        "client-request-id": req.client_request_id,
    }
    inner.update(error.inner)
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.details:
        body["details"] = error.details
    body["innerError"] = inner
    headers = graph_headers(req)
    headers.update(error.headers)
    return Response.json(error.status, {"error": body}, GRAPH_JSON, **headers)


def token_error(req: Request, error: exc.TokenError) -> Response:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    description = f"AADSTS{error.aadsts}: {error.description}{aadsts_trailer(req)}"
    payload = {
        "error": error.error,
        "error_description": description,
        "error_codes": [error.aadsts],
        "timestamp": stamp,
        "trace_id": req.request_id,
        "correlation_id": req.client_request_id,
        "error_uri": f"{req.base_url}/error?code={error.aadsts}",
    }
    return Response.json(error.status, payload, LOGIN_JSON, **login_headers(req))


def aadsts_trailer(req: Request) -> str:
    """What Entra appends to every AADSTS description (signin.md §2.3, §3.4)."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    return f"\r\nTrace ID: {req.request_id}\r\nCorrelation ID: {req.client_request_id}\r\nTimestamp: {stamp}"


def live_token_error(req: Request, error: exc.TokenError) -> Response:
    """login.live.com's token errors: only ``error`` and ``error_description`` (signin.md §4.3)."""
    description = f"AADSTS{error.aadsts}: {error.description}" if error.aadsts else error.description
    return Response.json(error.status, {"error": error.error, "error_description": description}, LOGIN_JSON,
                         **login_headers(req))


def basic_credentials(req: Request) -> tuple[str, str] | None:
    """``Authorization: Basic base64(id:secret)``, which the token endpoints accept as client credentials."""
    auth = req.headers.get("authorization", "")
    if not auth.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(auth[6:], validate=True).decode().partition(":")
    except ValueError:
        return None
    return unquote(user), unquote(password)


def login_headers(req: Request) -> dict[str, str]:
    return {
        "Cache-Control": "no-store, no-cache",
        "Pragma": "no-cache",
        "Expires": "-1",
        "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
        "X-Content-Type-Options": "nosniff",
        "x-ms-request-id": req.request_id,
        "client-request-id": req.client_request_id,
        "x-ms-ests-server": "emulator",
    }
