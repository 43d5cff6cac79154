"""Fault injection, applied around the router (never inside handlers).

Rules match on method + path regex (+ optional request kind) and answer with
an error status, drop the connection, hang then drop, or just add latency;
``times`` bounds how often a rule fires (None = unlimited). Eventual-consistency
effects (replication lag, secret activation delay) watch successful answers
go by and then refuse follow-up requests for a while, as Entra does.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from . import exceptions as exc
from .wire import Request, Response, graph_error, token_error

if TYPE_CHECKING:
    from .models import Directory

ACTIONS = ("respond", "drop", "hang", "delay")
_ids = itertools.count(1)


@dataclass
class FaultRule:
    path: str = ".*"
    method: str | None = None
    kind: str | None = None
    status: int | None = None
    action: str = "respond"
    retry_after: float | str | None = None
    code: str | None = None
    message: str | None = None
    delay: float = 0.0
    hang_seconds: float = 30.0
    times: int | None = 1
    id: int = field(default_factory=lambda: next(_ids))
    fired: int = 0

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}")
        if self.action == "respond" and self.status is None:
            raise ValueError("a 'respond' fault needs a status")
        self._regex = re.compile(self.path)

    def matches(self, req: Request, kind: str) -> bool:
        if self.method and self.method.upper() != req.method:
            return False
        if self.kind and self.kind != kind:
            return False
        return self._regex.search(req.path) is not None

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


@dataclass
class _Lagging:
    ids: set[str]
    app_id: str | None
    until: float | None
    remaining: int | None


class Faults:
    """The fault vocabulary, shared by the Python API and ``POST /_emulator/faults/{verb}``."""

    def __init__(self, directory: Directory, stopping: threading.Event) -> None:
        self._directory = directory
        self._stopping = stopping
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._lag_ms: float | None = None
        self._lag_requests: int | None = None
        self._lagging: list[_Lagging] = []
        self._secret_delay_ms: float | None = None
        self._young_secrets: dict[str, float] = {}
        self._next_link_origin: str | None = None

    # ------------------------------------------------------------ vocabulary

    def add(
        self, method: str | None = None, path: str = ".*", status: int | None = None, *, kind: str | None = None,
        action: str | None = None, retry_after: float | str | None = None, code: str | None = None,
        message: str | None = None, delay: float = 0.0, hang_seconds: float = 30.0, times: int | None = 1,
    ) -> FaultRule:
        if action is None:
            action = "respond" if status is not None else "delay"
        rule = FaultRule(path=path, method=method, kind=kind, status=status, action=action,
                         retry_after=retry_after, code=code, message=message, delay=float(delay),
                         hang_seconds=float(hang_seconds), times=times)
        with self._lock:
            self._rules.append(rule)
        return rule

    def latency(self, seconds: float, *, method: str | None = None, path: str = ".*", kind: str | None = None,
                times: int | None = None) -> FaultRule:
        return self.add(method, path, kind=kind, action="delay", delay=seconds, times=times)

    def throttle(self, method: str | None = None, path: str = ".*", *, retry_after: float | str = 1,
                 kind: str | None = None, times: int | None = 1) -> FaultRule:
        return self.add(method, path, 429, kind=kind, retry_after=retry_after, times=times)

    def drop(self, method: str | None = None, path: str = ".*", *, kind: str | None = None,
             times: int | None = 1) -> FaultRule:
        return self.add(method, path, kind=kind, action="drop", times=times)

    def hang(self, method: str | None = None, path: str = ".*", *, seconds: float = 30.0, kind: str | None = None,
             times: int | None = 1) -> FaultRule:
        return self.add(method, path, kind=kind, action="hang", hang_seconds=seconds, times=times)

    def replication_lag(self, ms: float | None = None, requests: int | None = None) -> None:
        """New objects answer 404 to follow-up calls for ``ms`` milliseconds or ``requests`` requests."""
        with self._lock:
            self._lag_ms, self._lag_requests = ms, requests
            if ms is None and requests is None:
                self._lagging.clear()

    def secret_activation_delay(self, ms: float | None) -> None:
        """New secrets are refused at the token endpoint (AADSTS7000215) for ``ms`` milliseconds."""
        with self._lock:
            self._secret_delay_ms = ms
            if not ms:
                self._young_secrets.clear()

    def secret_lifetime_policy(self, max_days: float | None, policy_id: str | None = None) -> None:
        """A tenant app-management policy capping secret lifetime (CredentialInvalidLifetimeAsPerAppPolicy)."""
        self._directory.set_secret_lifetime_policy(max_days, policy_id)

    def quota(self, limit: int | None) -> None:
        """At most ``limit`` directory objects per creating principal (Directory_QuotaExceeded)."""
        self._directory.set_quota(limit)

    def next_link_elsewhere(self, origin: str | None) -> None:
        """Every Graph collection page names a next page on ``origin`` (e.g. ``https://127.0.0.2:8443``),
        as a compromised or misconfigured endpoint could, to lure the caller's token there."""
        with self._lock:
            self._next_link_origin = origin.rstrip("/") if origin else None

    def remove(self, rule_id: int) -> None:
        with self._lock:
            self._rules = [r for r in self._rules if r.id != rule_id]

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._lag_ms = self._lag_requests = None
            self._lagging.clear()
            self._secret_delay_ms = None
            self._young_secrets.clear()
            self._next_link_origin = None
        self._directory.set_secret_lifetime_policy(None)
        self._directory.set_quota(None)

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {
                "rules": [r.describe() for r in self._rules],
                "replication_lag": {"ms": self._lag_ms, "requests": self._lag_requests},
                "secret_activation_delay": {"ms": self._secret_delay_ms},
                "next_link_elsewhere": {"origin": self._next_link_origin},
            }

    def call(self, verb: str, args: dict[str, Any]) -> Any:
        """The admin endpoint's entry: ``POST /_emulator/faults/{verb}`` with the same keyword arguments."""
        verbs: dict[str, Callable[..., Any]] = {
            "add": self.add, "latency": self.latency, "throttle": self.throttle, "drop": self.drop,
            "hang": self.hang, "replication_lag": self.replication_lag,
            "secret_activation_delay": self.secret_activation_delay,
            "secret_lifetime_policy": self.secret_lifetime_policy, "quota": self.quota, "clear": self.clear,
            "next_link_elsewhere": self.next_link_elsewhere,
            "remove": self.remove,
        }
        if verb not in verbs:
            raise KeyError(verb)
        result = verbs[verb](**args)
        return result.describe() if isinstance(result, FaultRule) else None

    # ------------------------------------------------------------ around the router

    def before(self, req: Request, kind: str) -> Response | None:
        """Latency, matched rules, then eventual-consistency effects. None = go on to the router."""
        delay = 0.0
        fired: FaultRule | None = None
        with self._lock:
            for rule in list(self._rules):
                if not rule.matches(req, kind):
                    continue
                if rule.action == "delay":
                    delay += rule.delay
                elif fired is None:
                    fired = rule
                    delay += rule.delay
                else:
                    continue
                rule.fired += 1
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times <= 0:
                        self._rules.remove(rule)
        if delay > 0:
            self._stopping.wait(delay)
        if fired is not None:
            return self._fire(fired, req, kind)
        if kind == "graph":
            return self._replication_lag(req)
        if kind == "token":
            return self._young_secret(req)
        return None

    def after(self, req: Request, kind: str, resp: Response) -> None:
        if kind != "graph" or not isinstance(resp.payload, dict):
            return
        moment = time.monotonic()
        with self._lock:
            if resp.status == 200 and self._next_link_origin and isinstance(resp.payload.get("value"), list):
                resp.payload["@odata.nextLink"] = f"{self._next_link_origin}{req.path}?$skiptoken=elsewhere"
                resp.body = json.dumps(resp.payload, separators=(",", ":")).encode()
            if resp.status == 201 and (self._lag_ms is not None or self._lag_requests is not None):
                ids = {str(resp.payload[k]).lower() for k in ("id", "appId") if resp.payload.get(k)}
                creates = req.path in ("/v1.0/applications", "/v1.0/servicePrincipals") or req.path.startswith(
                    "/v1.0/applications(uniqueName=")
                if ids and creates:
                    until = None if self._lag_ms is None else moment + self._lag_ms / 1000
                    app_id = resp.payload.get("appId") if req.path.startswith("/v1.0/applications") else None
                    self._lagging.append(_Lagging(ids, app_id, until, self._lag_requests))
            secret = resp.payload.get("secretText")
            if resp.status == 200 and self._secret_delay_ms and isinstance(secret, str):
                self._young_secrets[_digest(secret)] = moment + self._secret_delay_ms / 1000

    def _fire(self, rule: FaultRule, req: Request, kind: str) -> Response:
        if rule.action == "drop":
            return Response(0, action="drop")
        if rule.action == "hang":
            self._stopping.wait(rule.hang_seconds)
            return Response(0, action="drop")
        assert rule.status is not None
        headers: dict[str, str] = {}
        if rule.retry_after is not None:
            headers["Retry-After"] = str(rule.retry_after)
        if kind in ("token", "devicecode"):
            token_failure = exc.TokenError(
                rule.status, "temporarily_unavailable" if rule.status >= 429 else "invalid_request",
                50196 if rule.status == 429 else 90033, rule.message or "A transient error has occurred. Please try again.",
            )
            resp = token_error(req, token_failure)
            resp.headers.update(headers)
            return resp
        cls = exc.graph_error_for_status(rule.status)
        inner = {"code": "429", "message": "Please retry after", "status": "429"} if rule.status == 429 else {}
        code, message = rule.code or cls.code, rule.message or cls.message
        if rule.status == 404:
            code = rule.code or "Request_ResourceNotFound"
            message = rule.message or exc.ResourceNotFound(req.path.rsplit("/", 1)[-1]).message
        error = exc.GraphError(message, status=rule.status, code=code, headers=headers, inner=inner)
        return graph_error(req, error)

    def _replication_lag(self, req: Request) -> Response | None:
        if not self._lagging:
            return None
        moment = time.monotonic()
        path = req.path.lower()
        body_app_id: str | None = None
        if req.method == "POST" and path == "/v1.0/serviceprincipals":
            try:
                body_app_id = str(req.json().get("appId", "")).lower()
            except exc.GraphError:
                body_app_id = None
        with self._lock:
            self._lagging = [
                e for e in self._lagging
                if (e.until is None or e.until > moment) and (e.remaining is None or e.remaining > 0)
            ]
            for entry in self._lagging:
                hit = next((i for i in entry.ids if i in path), None)
                if hit is None and not (body_app_id and body_app_id in entry.ids and entry.app_id):
                    continue
                if entry.remaining is not None:
                    entry.remaining -= 1
                if hit is None:
                    return graph_error(req, exc.NoBackingApplication(str(entry.app_id)))
                return graph_error(req, exc.ResourceNotFound(hit))
        return None

    def _young_secret(self, req: Request) -> Response | None:
        if not self._young_secrets:
            return None
        form = req.form()
        secret = form.get("client_secret")
        if not secret:
            return None
        moment = time.monotonic()
        with self._lock:
            self._young_secrets = {k: v for k, v in self._young_secrets.items() if v > moment}
            if _digest(secret) not in self._young_secrets:
                return None
        return token_error(req, exc.invalid_secret(form.get("client_id", "")))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
