"""Webhook alerts (`--notify URL`): a JSON POST on every rotation, every failure, and every secret that
expires within 14 days while nothing could rotate it.

The body names the event, the app, the `.env`, the expiry and the exit code — never a secret: every
secret `.env` holds, the operator's credential in the environment and anything shaped like a token are
replaced before it is sent. Each URL is tried a few times within `DEADLINE` seconds, all URLs at once
on daemon threads: an unreachable receiver costs the run at most `DEADLINE` seconds and never changes
its outcome or exit code.

Where events go is the operator's choice only (issue 18, rule 7): the URLs come from `--notify` or the
installation record, never from `.env`; https only (http only to this machine's loopback, where no one
else listens on the wire); a redirect is not followed (it would send the body where no one chose).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cypht_azure import envdisk, envfile, trust
from cypht_azure.errors import InputError
from cypht_azure.operations.core.session import parse_time
from cypht_azure.secret import Secret

NOTIFY_ENV = "CYPHT_AZURE_NOTIFY"
EXPIRING_WITHIN = dt.timedelta(days=14)
DEADLINE = 10.0
ATTEMPTS = 3
USER_AGENT = "cypht-azure"

ROTATED, FAILED, EXPIRING = "rotated", "failed", "expiring"


# The operator's own credentials, never in a body, whatever a message quotes.
CREDENTIAL_VARIABLES = ("AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_PASSWORD")
_TOKEN = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")  # a JWT (access or ID token)
REDACTED = "[redacted]"


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def validate_urls(urls: Sequence[str]) -> list[str]:
    """https URLs with a host (http only to loopback), checked before anything else happens."""
    checked = []
    for url in urls:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(f"--notify {redacted(url)!r} is not an https:// URL.",
                             hint="Give the webhook URL of your alerting (e.g. https://alerts.example.com/hook).")
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise InputError(
                f"--notify {redacted(url)!r} is plain http to another machine: anyone on the way could read "
                "or change the events.",
                hint="Use the receiver's https:// URL (http:// is accepted only for 127.0.0.1, ::1 or localhost).")
        checked.append(url.strip())
    return checked


def scrub(text: str, secrets: Sequence[Secret]) -> str:
    """`text` without any of `secrets` and without anything shaped like a token."""
    for secret in sorted(secrets, key=lambda s: -len(s.reveal())):
        value = secret.reveal()
        if len(value) >= 6:
            text = text.replace(value, REDACTED)
    return _TOKEN.sub(REDACTED, text)


def secrets_for(env_files: Sequence[str], environ: Mapping[str, str] | None = None) -> list[Secret]:
    """What a body must never hold: the operator's credential and every client secret of these `.env` files."""
    environ = os.environ if environ is None else environ
    found = [Secret(v) for name in CREDENTIAL_VARIABLES if (v := environ.get(name))]
    for path in dict.fromkeys(env_files):
        try:
            doc = envdisk.load(Path(path))
        except (envfile.EnvFileError, OSError):
            continue
        found += [Secret(v) for key in sorted(doc.keys()) if key.endswith("_CLIENT_SECRET") and (v := doc.get(key))]
    return found


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

    def body(self, secrets: Sequence[Secret] = ()) -> bytes:
        return scrub(json.dumps({"source": "cypht-azure", **asdict(self)}), secrets).encode("utf-8")


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


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a new address: the event goes where the operator said, or nowhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _post(url: str, body: bytes, timeout: float, context: ssl.SSLContext | None) -> None:
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": USER_AGENT})
    opener = urllib.request.build_opener(_NoRedirect(), urllib.request.HTTPSHandler(context=context))
    with opener.open(request, timeout=timeout) as answer:
        answer.read(65536)


def _deliver(url: str, event: Event, deadline: float, context: ssl.SSLContext | None, out: list[Delivery],
             secrets: Sequence[Secret] = ()) -> None:
    detail, attempts = "", 0
    body = event.body(secrets)
    while attempts < ATTEMPTS and time.monotonic() < deadline:
        attempts += 1
        try:
            _post(url, body, max(0.5, min(5.0, deadline - time.monotonic())), context)
            out.append(Delivery(redacted(url), event.event, True, attempts))
            return
        except urllib.error.HTTPError as exc:
            detail = f"HTTP {exc.code}"
            if 300 <= exc.code < 400:
                detail += " (a redirect, not followed)"
                break
            if exc.code < 500 and exc.code not in (408, 429):
                break  # the receiver refuses this body: asking again will not help
        except (urllib.error.URLError, OSError) as exc:
            detail = str(getattr(exc, "reason", exc))
        time.sleep(min(0.5 * attempts, max(0.0, deadline - time.monotonic())))
    out.append(Delivery(redacted(url), event.event, False, attempts, detail or "no time left"))


def send(urls: Sequence[str], events: Sequence[Event], *, deadline: float = DEADLINE,
         ca_file: str | None = None, secrets: Sequence[Secret] = ()) -> list[Delivery]:
    """POST every event to every URL, in parallel, returning within `deadline` seconds whatever happens.
    A URL that is not https (or http to loopback) is refused here too, whoever handed it over."""
    if not urls or not events:
        return []
    refused: list[Delivery] = []
    allowed: list[str] = []
    for url in urls:
        try:
            allowed += validate_urls([url])
        except InputError as exc:
            refused += [Delivery(redacted(url), e.event, False, 0, exc.message) for e in events]
    urls = allowed
    secrets = [*secrets, *secrets_for([e.env_file for e in events])]
    context = trust.ssl_context(ca_file) if ca_file else None
    end = time.monotonic() + deadline
    results: list[Delivery] = []
    threads = []
    for url in urls:
        def deliver_all(url: str = url) -> None:
            for event in events:
                _deliver(url, event, end, context, results, secrets)
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
    return refused + list(results)


def deliveries_json(deliveries: Sequence[Delivery]) -> list[dict[str, Any]]:
    return [asdict(d) for d in deliveries]
