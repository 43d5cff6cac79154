"""Helpers for the emulator's own tests: plain HTTP clients that trust its CA."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from cypht_azure.emulator import Emulator


@pytest.fixture
def emulator(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    """A fresh in-memory emulator; ``@pytest.mark.emulator(sign_in="auto", ...)`` in a test's header sets
    its constructor options (sign-in mode, bind, hosts)."""
    marker = request.node.get_closest_marker("emulator")
    with Emulator(**(dict(marker.kwargs) if marker else {})) as emu:
        yield emu


@lru_cache(maxsize=8)
def _context(ca_file: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)


def ca_context(emu: Emulator) -> ssl.SSLContext:
    """An SSL context trusting the emulator's CA (httpx deprecates ``verify=<path>``)."""
    return _context(emu.info["ca_file"])


def token_for(emu: Emulator, client_id: str, secret: str, scope: str = "https://graph.microsoft.com/.default") -> str:
    info = emu.info
    r = httpx.post(
        f"{info['authority_host']}/{info['tenant_id']}/oauth2/v2.0/token",
        data={"client_id": client_id, "client_secret": secret, "grant_type": "client_credentials", "scope": scope},
        verify=ca_context(emu),
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


class Graph:
    """A thin httpx wrapper: ``graph.get("/applications")`` against the emulator's /v1.0."""

    def __init__(self, emu: Emulator, token: str) -> None:
        self.emu = emu
        self.client = httpx.Client(base_url=emu.info["graph_url"], verify=ca_context(emu),
                                   headers={"Authorization": f"Bearer {token}"}, timeout=10)

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.client.request(method, self.emu.info["graph_url"] + path, **kw)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", path, **kw)

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def graph(emulator: Emulator) -> Iterator[Graph]:
    """Graph as the seeded administrator app (Application.ReadWrite.All) — token from the real endpoint."""
    info = emulator.info
    g = Graph(emulator, token_for(emulator, info["admin_client_id"], info["admin_client_secret"]))
    yield g
    g.close()


def graph_as(emu: Emulator, client_id: str, secret: str) -> Graph:
    return Graph(emu, token_for(emu, client_id, secret))


# ---------------------------------------------------------------- the sign-in endpoints

def web_app(emu: Emulator, audience: str = "AzureADandPersonalMicrosoftAccount",
            redirect_uris: tuple[str, ...] = ("https://mail.example.org/",), name: str = "Cypht webmail",
            **props: Any) -> tuple[str, str]:
    """A Web app with a client secret, registered as cypht-azure registers Cypht's; (client ID, secret)."""
    body: dict[str, Any] = {"displayName": name, "signInAudience": audience, "web": {"redirectUris": list(redirect_uris)}}
    if audience in ("AzureADandPersonalMicrosoftAccount", "PersonalMicrosoftAccount"):
        body["api"] = {"requestedAccessTokenVersion": 2}
    body.update(props)
    app = emu.directory.create_application(**body)
    _, secret = emu.directory.add_password(app["id"])
    return app["appId"], secret


class SignIn:
    """Plain HTTP against the sign-in endpoints, no redirect followed: what a browser and Cypht's curl see."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.client = httpx.Client(verify=ca_context(emu), follow_redirects=False, timeout=10)

    def authorize(self, path: str, params: dict[str, str] | None = None, form: dict[str, str] | None = None,
                  raw_query: str | None = None) -> httpx.Response:
        url = self.emu.base_url + path
        if raw_query is not None:
            url += "?" + raw_query
        if form is not None:
            return self.client.post(url, params=params, data=form)
        return self.client.get(url, params=params)

    def token(self, path: str, form: dict[str, str], **kw: Any) -> httpx.Response:
        return self.client.post(self.emu.base_url + path, data=form, **kw)

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def signin(emulator: Emulator) -> Iterator[SignIn]:
    client = SignIn(emulator)
    yield client
    client.close()


def redirected(r: httpx.Response, to: str) -> dict[str, str]:
    """The parameters of a 302 to ``to`` (query, or fragment when ``to`` ends with '#')."""
    assert r.status_code == 302, (r.status_code, r.text[:500])
    location = r.headers["location"]
    fragment = to.endswith("#")
    assert location.startswith(to.rstrip("#")), (location, to)
    parts = urlsplit(location)
    return dict(parse_qsl(parts.fragment if fragment else parts.query, keep_blank_values=True))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the conformance counts the replay tests recorded (works under xdist too)."""
    rows = []
    for outcome in ("passed", "failed"):
        for report in terminalreporter.stats.get(outcome, []):
            for name, value in getattr(report, "user_properties", []):
                if name == "conformance" and getattr(report, "when", "call") == "call":
                    file, replayed, matched = str(value).rsplit(":", 2)
                    rows.append((file, int(replayed), int(matched)))
    if rows:
        total, ok = sum(r[1] for r in rows), sum(r[2] for r in rows)
        terminalreporter.write_sep("-", "graph-recordings conformance")
        for file, replayed, matched in sorted(rows):
            terminalreporter.write_line(f"{file}: {matched}/{replayed} interactions matched")
        terminalreporter.write_line(f"total: {total} interactions replayed, {ok} matched ({len(rows)} cassettes)")
