"""Webhook alerts (`--notify URL`): a JSON POST on every rotation, every failure, and every secret that
expires within 14 days while nothing could rotate it.

The body names the event, the app, the `.env`, the expiry and the exit code — never a secret. Each URL
is tried a few times within `DEADLINE` seconds, all URLs at once on daemon threads: an unreachable
receiver costs the run at most `DEADLINE` seconds and never changes its outcome or exit code.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cypht_azure import trust
from cypht_azure.errors import InputError
from cypht_azure.operations.core.session import parse_time

NOTIFY_ENV = "CYPHT_AZURE_NOTIFY"
EXPIRING_WITHIN = dt.timedelta(days=14)
DEADLINE = 10.0
ATTEMPTS = 3
USER_AGENT = "cypht-azure"

ROTATED, FAILED, EXPIRING = "rotated", "failed", "expiring"


def validate_urls(urls: Sequence[str]) -> list[str]:
    """http(s) URLs with a host, checked before anything else happens."""
    checked = []
    for url in urls:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(f"--notify {redacted(url)!r} is not an http:// or https:// URL.",
                             hint="Give the webhook URL of your alerting (e.g. https://alerts.example.com/hook).")
        checked.append(url.strip())
    return checked


def redacted(url: str) -> str:
    """Scheme and host only: a webhook URL's path often is its password (Slack, Teams, ntfy tokens)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}/…" if parts.hostname else "(not a URL)"


@dataclass
class Event:
    event: str                   # rotated | failed | expiring
    command: str
    env_file: str
    exit_code: int
    app: str | None = None       # client ID
    expires: str | None = None   # the expiry of the secret .env holds after the run
    message: str | None = None
    host: str = field(default_factory=socket.gethostname)
    time: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))

    def body(self) -> bytes:
        return json.dumps({"source": "cypht-azure", **asdict(self)}).encode("utf-8")


def events_for(*, command: str, env_file: str, exit_code: int, app: str | None, rotated: bool,
               expires: str | None, message: str | None, now: dt.datetime) -> list[Event]:
    """What one run reports: its rotation or failure, and an expiring secret nothing replaced."""
    events = []
    if exit_code != 0:
        events.append(Event(FAILED, command, env_file, exit_code, app, expires, message))
    elif rotated:
        events.append(Event(ROTATED, command, env_file, exit_code, app, expires, message))
    end = parse_time(expires)
    if not rotated and end is not None and end - now <= EXPIRING_WITHIN:
        days = (end - now).total_seconds() / 86400
        events.append(Event(EXPIRING, command, env_file, exit_code, app, expires,
                            f"the client secret in {env_file} expires in {days:.1f} days and was not replaced"))
    return events


@dataclass
class Delivery:
    url: str                # redacted
    event: str
    ok: bool
    attempts: int
    detail: str = ""


def _post(url: str, body: bytes, timeout: float, context: ssl.SSLContext | None) -> None:
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout, context=context) as answer:
        answer.read(65536)


def _deliver(url: str, event: Event, deadline: float, context: ssl.SSLContext | None, out: list[Delivery]) -> None:
    detail, attempts = "", 0
    while attempts < ATTEMPTS and time.monotonic() < deadline:
        attempts += 1
        try:
            _post(url, event.body(), max(0.5, min(5.0, deadline - time.monotonic())), context)
            out.append(Delivery(redacted(url), event.event, True, attempts))
            return
        except urllib.error.HTTPError as exc:
            detail = f"HTTP {exc.code}"
            if exc.code < 500 and exc.code not in (408, 429):
                break  # the receiver refuses this body: asking again will not help
        except (urllib.error.URLError, OSError) as exc:
            detail = str(getattr(exc, "reason", exc))
        time.sleep(min(0.5 * attempts, max(0.0, deadline - time.monotonic())))
    out.append(Delivery(redacted(url), event.event, False, attempts, detail or "no time left"))


def send(urls: Sequence[str], events: Sequence[Event], *, deadline: float = DEADLINE,
         ca_file: str | None = None) -> list[Delivery]:
    """POST every event to every URL, in parallel, returning within `deadline` seconds whatever happens."""
    if not urls or not events:
        return []
    context = trust.ssl_context(ca_file) if ca_file else None
    end = time.monotonic() + deadline
    results: list[Delivery] = []
    threads = []
    for url in urls:
        def deliver_all(url: str = url) -> None:
            for event in events:
                _deliver(url, event, end, context, results)
        thread = threading.Thread(target=deliver_all, daemon=True, name="cypht-azure-notify")
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))
    delivered = {(d.url, d.event) for d in results}
    for url in urls:
        for event in events:
            if (redacted(url), event.event) not in delivered:
                results.append(Delivery(redacted(url), event.event, False, 0, "still waiting at the deadline"))
    return list(results)


def deliveries_json(deliveries: Sequence[Delivery]) -> list[dict[str, Any]]:
    return [asdict(d) for d in deliveries]
