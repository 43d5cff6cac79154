"""Helpers for the emulator's own tests: plain HTTP clients that trust its CA."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import httpx
import pytest

from cypht_azure.emulator import Emulator


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
