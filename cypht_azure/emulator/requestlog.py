"""The request log tests read: what was asked and answered — never secrets or tokens."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class LogEntry:
    method: str
    path: str  # as sent, with the query string
    status: int  # 0 when the connection was dropped without an answer
    kind: str  # token | openid | devicecode | authorize | graph | arm | admin
    timestamp: float
    grant_type: str | None = None
    client_id: str | None = None
    fault: str | None = None  # "drop", "hang", "status", "replication_lag", "secret_activation" when injected
    error: str | None = None  # a refusal's code: "AADSTS7000215", Graph's "Authorization_RequestDenied", ...
    duration_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RequestLog:
    def __init__(self, limit: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._entries: list[LogEntry] = []
        self._limit = limit

    def append(self, entry: LogEntry) -> None:
        with self._lock:
            self._entries.append(entry)
            if len(self._entries) > self._limit:
                del self._entries[: len(self._entries) - self._limit]

    def snapshot(self) -> list[LogEntry]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
