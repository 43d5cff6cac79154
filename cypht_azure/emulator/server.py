"""The HTTPS server and the request pipeline: faults -> router -> faults, logged.

``ThreadingHTTPServer`` with the TLS handshake done in the per-connection
thread (a slow client never blocks ``accept``), HTTP/1.1 keep-alive with
Content-Length on every answer.
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from . import exceptions as exc
from . import urls
from .admin import AdminHandlers
from .faults import Faults
from .identity import TokenService
from .models import Caller
from .requestlog import LogEntry, RequestLog
from .responses import Handlers
from .schema import ARM_RESOURCES, GRAPH_RESOURCES
from .signin import SignInHandlers
from .state import StateStore
from .wire import Request, Response, graph_error, token_error

GRAPH_AUDIENCES = (*GRAPH_RESOURCES, "https://graph.microsoft.com/")
# The two ARM reads exist for `az login`; they also take Graph tokens, so that the Azure CLI can
# register one cloud whose every endpoint is the emulator (see docs/emulator.md).
ARM_AUDIENCES = (*ARM_RESOURCES, "https://management.core.windows.net/", *GRAPH_AUDIENCES)
MUTATING = frozenset({"POST", "PATCH", "PUT", "DELETE"})


class Router:
    """Route, authenticate, run the handler inside a state transaction, turn errors into answers."""

    def __init__(self, handlers: Handlers, signin: SignInHandlers, admin: AdminHandlers, tokens: TokenService,
                 store: StateStore) -> None:
        self.rooms: dict[str, Any] = {"graph": handlers, "signin": signin, "admin": admin}
        self.admin = admin
        self.tokens = tokens
        self.store = store

    def dispatch(self, req: Request) -> tuple[str, Response]:
        route, m, path_known = urls.match(req.method, req.path)
        kind = route.kind if route else urls.kind_of_path(req.path)
        try:
            if kind == "admin":
                refusal = self.admin.refusal(req)
                if refusal is not None:
                    return kind, refusal
            caller = self._authenticate(req, kind)
            if route is None or m is None:
                if kind in ("graph", "arm") and path_known:
                    raise exc.MethodNotAllowed()
                segment = req.path.strip("/").split("/")[-1]
                if kind in ("token", "devicecode", "openid", "authorize"):
                    return kind, Response.json(404, {"error": "not_found", "error_description": req.path},
                                               "application/json; charset=utf-8")
                raise exc.SegmentNotFound(segment)
            handler = getattr(self.rooms[route.room], route.handler)
            # The whole handler runs under the state lock: rendering never sees a half-applied update.
            # An authorize GET may issue a code (--sign-in auto): it writes too.
            if req.method in MUTATING or kind == "authorize":
                with self.store.write():
                    return kind, handler(req, m, caller)
            with self.store.read():
                return kind, handler(req, m, caller)
        except exc.TokenError as error:
            return kind, token_error(req, error)
        except exc.GraphError as error:
            if kind == "arm":
                return kind, Response.json(error.status, {"error": {"code": error.code, "message": error.message}},
                                           "application/json; charset=utf-8")
            return kind, graph_error(req, error)

    def _authenticate(self, req: Request, kind: str) -> Caller | None:
        if kind == "graph":
            return self.tokens.validate_bearer(req.headers.get("authorization"), GRAPH_AUDIENCES)
        if kind == "arm":
            if not req.headers.get("authorization"):
                raise exc.GraphError("Authentication failed. The 'Authorization' header is missing.", status=401,
                                     code="AuthenticationFailed")
            try:
                return self.tokens.validate_bearer(req.headers.get("authorization"), ARM_AUDIENCES)
            except exc.InvalidAuthenticationToken as error:
                raise exc.GraphError("The access token is invalid.", status=401,
                                     code="InvalidAuthenticationToken") from error
        return None


class Pipeline:
    """Everything one request goes through, in order."""

    def __init__(self, router: Router, faults: Faults, log: RequestLog) -> None:
        self.router = router
        self.faults = faults
        self.log = log

    def handle(self, req: Request) -> Response:
        started = time.monotonic()
        route, _, _ = urls.match(req.method, req.path)
        kind = route.kind if route else urls.kind_of_path(req.path)
        fault: str | None = None
        resp = None if kind == "admin" else self.faults.before(req, kind)
        if resp is not None:
            fault = resp.action or "status"
        else:
            try:
                kind, resp = self.router.dispatch(req)
            except Exception:  # a bug in the emulator: answer like Graph's 500, keep serving
                traceback.print_exc(file=sys.stderr)
                resp = graph_error(req, exc.GeneralException())
            if kind != "admin":
                self.faults.after(req, kind, resp)
        grant_type = client_id = None
        if kind in ("token", "devicecode"):
            form = req.form()
            grant_type, client_id = form.get("grant_type"), form.get("client_id")
        elif kind == "authorize":
            client_id = req.query.get("client_id")
        self.log.append(LogEntry(
            method=req.method, path=req.raw_path, status=resp.status, kind=kind, timestamp=time.time(),
            grant_type=grant_type, client_id=client_id, fault=fault, error=refusal_code(resp),
            duration_ms=round((time.monotonic() - started) * 1000, 3),
        ))
        return resp


_AADSTS = re.compile(r"^AADSTS(\d+)")


def refusal_code(resp: Response) -> str | None:
    """The code of a refused request, for the log: ``AADSTS<n>`` when there is one, else the OAuth
    ``error`` or Graph's error code; from a JSON body, an error redirect, or an error page. Only codes:
    never a description (which may echo what was sent), a secret or a token."""
    if resp.error_code:
        return resp.error_code
    payload = resp.payload
    if resp.status >= 400 and isinstance(payload, dict):
        codes = payload.get("error_codes")
        if isinstance(codes, list) and codes and codes[0]:
            return f"AADSTS{codes[0]}"
        error = payload.get("error")
        if isinstance(error, dict):  # Graph, ARM and the admin endpoints
            return str(error.get("code") or resp.status)
        if isinstance(error, str):
            found = _AADSTS.match(str(payload.get("error_description") or ""))
            return f"AADSTS{found.group(1)}" if found else error
        return f"HTTP {resp.status}"  # App Service's managed identity errors carry only a message
    if resp.status == 302:  # an error sent back to the redirect URI, or to Live's err.srf
        parts = urlsplit(resp.headers.get("Location", ""))
        params = dict(parse_qsl(parts.query)) | dict(parse_qsl(parts.fragment))
        if "error" in params and "code" not in params:
            found = _AADSTS.match(params.get("error_description", ""))
            return f"AADSTS{found.group(1)}" if found else params["error"]
    if resp.status >= 400:
        return f"HTTP {resp.status}"
    return None


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cypht-azure-emulator"
    sys_version = ""
    timeout = 60  # idle keep-alive connections release their thread
    server: EmulatorHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        return  # the request log is the record; stderr stays quiet

    def _serve(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0:
                raise ValueError("negative Content-Length")
            body = self.rfile.read(length) if length else b""
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                body = self._read_chunked()
        except ValueError:  # a malformed length or chunk size: 400, as any front end answers, and close
            self.close_connection = True
            self.send_error(400, "Bad Request")
            return
        req = Request(
            method=self.command, raw_path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()}, body=body,
            client_ip=self.client_address[0], host=self.headers.get("Host") or self.server.default_host,
        )
        resp = self.server.pipeline.handle(req)
        if resp.action == "drop":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(resp.status)
        for name, value in resp.headers.items():
            self.send_header(name, value)
        if resp.status != 204 and resp.status != 304:
            self.send_header("Content-Length", str(len(resp.body)))
        # Headers and body in one write: two small segments would meet the client's delayed ACK (~40 ms).
        buffer: list[bytes] = self._headers_buffer  # type: ignore[attr-defined]
        buffer.append(b"\r\n")
        if resp.body and resp.status != 204:
            buffer.append(resp.body)
        self.flush_headers()

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve


class EmulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], ssl_context: ssl.SSLContext, pipeline: Pipeline) -> None:
        self.ssl_context = ssl_context
        self.pipeline = pipeline
        super().__init__(address, _RequestHandler)
        host, port = self.server_address[:2]
        self.default_host = f"{host.decode() if isinstance(host, bytes) else host}:{port}"
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()

    def finish_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self._connections.add(request)
        try:
            try:
                request.settimeout(10)  # a stalled handshake must not pin a thread forever
                request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                tls = self.ssl_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return  # a client that gave up or does not trust us
            with self._conn_lock:
                self._connections.discard(request)
                self._connections.add(tls)
            try:
                _RequestHandler(tls, client_address, self)
            except (ConnectionError, ssl.SSLError, TimeoutError):
                pass
            finally:
                with self._conn_lock:
                    self._connections.discard(tls)
                with contextlib.suppress(OSError):
                    tls.close()
        finally:
            with self._conn_lock:
                self._connections.discard(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc_type = sys.exc_info()[0]
        if exc_type is not None and issubclass(exc_type, (ConnectionError, ssl.SSLError, TimeoutError)):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        with self._conn_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
