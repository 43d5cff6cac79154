"""The test controls: ``/_emulator/*`` (request log, faults, info) and who may use them.

Bound to loopback, only local clients reach the emulator, and these endpoints answer them without a
token (and refuse anyone else). Bound beyond loopback (``--bind``), anyone on the network could
rewrite its faults, so every call must carry the emulator admin's token: a client-credentials token of
``admin_client_id``, as ``POST /{tenant}/oauth2/v2.0/token`` issues it for the admin's secret.

Beyond loopback no other token path hands out admin rights (the admin app's token, or a token of a
user with an administrator role) to someone who lacks the admin's credential (identity.py,
authorize.py): ``/msi/token`` wants the ``identity_header`` of emulator.json; federated (workload
identity) assertions, whose issuer's signature the emulator cannot check, are refused; a device code
waits until the admin approves it here (``POST /_emulator/devicelogin``); the sign-in page, which asks
no password, refuses administrators.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from . import exceptions as exc
from .faults import Faults
from .identity import TokenService
from .models import Caller
from .requestlog import RequestLog
from .schema import GRAPH_RESOURCES
from .wire import Request, Response

Match = re.Match[str]
GRAPH_AUDIENCES = (*GRAPH_RESOURCES, "https://graph.microsoft.com/")


def is_loopback(address: str) -> bool:
    if address in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


def _forbidden(status: int, code: str, message: str, **headers: str) -> Response:
    return Response.json(status, {"error": {"code": code, "message": message}}, "application/json", **headers)


class AdminHandlers:
    def __init__(self, tokens: TokenService, faults: Faults, log: RequestLog, info: Callable[[], dict[str, Any]],
                 *, loopback_only: bool) -> None:
        self.tokens = tokens
        self.faults = faults
        self.log = log
        self.info = info
        self.loopback_only = loopback_only

    def refusal(self, req: Request) -> Response | None:
        """None when ``req`` may use the admin endpoints, else the answer that refuses it."""
        if self.loopback_only:
            return None if is_loopback(req.client_ip) else _forbidden(403, "Forbidden", "loopback only")
        try:
            caller = self.tokens.validate_bearer(req.headers.get("authorization"), GRAPH_AUDIENCES)
        except exc.InvalidAuthenticationToken as error:
            return _forbidden(401, "Unauthorized",
                              f"{error.message} This emulator listens beyond loopback: its /_emulator endpoints need "
                              "the emulator admin's token (client credentials of admin_client_id).",
                              **{"WWW-Authenticate": 'Bearer realm="cypht-azure emulator"'})
        if caller.kind != "app" or (caller.app_id or "").lower() != self.tokens.directory.seed["admin_client_id"]:
            return _forbidden(403, "Forbidden", "Only the emulator admin's token (admin_client_id) may use /_emulator.")
        return None

    def admin_info(self, req: Request, m: Match, caller: Caller | None) -> Response:
        info = {k: v for k, v in self.info().items() if k not in ("admin_client_secret", "identity_header")}
        return Response.json(200, info, "application/json")

    def admin_log(self, req: Request, m: Match, caller: Caller | None) -> Response:
        if req.method == "DELETE":
            self.log.clear()
            return Response.empty(204)
        return Response.json(200, {"value": [e.as_dict() for e in self.log.snapshot()]}, "application/json")

    def admin_faults(self, req: Request, m: Match, caller: Caller | None) -> Response:
        if req.method == "DELETE":
            self.faults.clear()
            return Response.empty(204)
        return Response.json(200, self.faults.describe(), "application/json")

    def admin_fault_verb(self, req: Request, m: Match, caller: Caller | None) -> Response:
        try:
            result = self.faults.call(m.group("verb"), req.json())
        except KeyError as error:
            return Response.json(404, {"error": {"code": "UnknownFault", "message": f"No fault verb {error}."}},
                                 "application/json")
        except (TypeError, ValueError, re.error) as error:
            return Response.json(400, {"error": {"code": "BadRequest", "message": str(error)}}, "application/json")
        if result is None:
            return Response.empty(204)
        return Response.json(200, result, "application/json")

    def admin_device_login(self, req: Request, m: Match, caller: Caller | None) -> Response:
        """The emulator's microsoft.com/devicelogin: the admin approves a device code by its user code."""
        user_code = req.json().get("user_code")
        if not isinstance(user_code, str) or not user_code.strip():
            return Response.json(400, {"error": {"code": "BadRequest", "message": "Give the user_code to approve."}},
                                 "application/json")
        if not self.tokens.approve_device_code(user_code):
            return Response.json(404, {"error": {"code": "NotFound",
                                                 "message": "No pending device code has that user code."}},
                                 "application/json")
        return Response.empty(204)
