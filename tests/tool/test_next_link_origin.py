"""@odata.nextLink is followed only on the Graph endpoint we called: a page pointing at another host
stops the listing with a clear error, and nothing (no connection, let alone the token) reaches that host."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.tool.conftest import Cli, graph_requests


class Listener:
    """A TLS listener on another loopback address, trusted by the run, that records every connection
    and every request's headers (answering an empty page, as a lure would)."""

    def __init__(self, tmp_path: Path) -> None:
        import trustme

        ca = trustme.CA()
        self.ca_file = tmp_path / "other-host-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.2").configure_cert(self.context)
        self.sock = socket.create_server(("127.0.0.2", 0))
        self.sock.settimeout(0.2)
        self.origin = f"https://127.0.0.2:{self.sock.getsockname()[1]}"
        self.connections = 0
        self.requests: list[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            try:
                conn.settimeout(5)
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    head = b""
                    while b"\r\n\r\n" not in head and (chunk := tls.recv(4096)):
                        head += chunk
                    self.requests.append(head.decode("latin-1"))
                    body = b'{"value":[]}'
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                                + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
            except (OSError, ssl.SSLError):
                pass

    def close(self) -> None:
        self.stopping.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def other_host(tmp_path: Path) -> Iterator[Listener]:
    listener = Listener(tmp_path)
    yield listener
    listener.close()


def test_next_link_to_another_host_is_not_followed(cli: Cli, emulator: Any, other_host: Listener,
                                                   cli_env: dict[str, str]) -> None:
    emulator.faults.next_link_elsewhere(other_host.origin)
    # The run trusts the other host's certificate (its CA in the system store, the emulator's as
    # --ca-file), so only the origin check keeps the request, and the token, away from it.
    trusted = {"SSL_CERT_FILE": str(other_host.ca_file), "REQUESTS_CA_BUNDLE": cli_env["CYPHT_AZURE_CA_FILE"]}
    r = cli("status", "--all", "--json", env=trusted)
    assert r.returncode == 1, r  # Graph failed: the listing stops
    message = r.json["error"]["message"]
    assert "next-page link to another host" in message and other_host.origin.lower() in message, r
    assert other_host.connections == 0 and other_host.requests == [], other_host.requests
    # the first page was asked for, and nothing more
    assert [(m, p.split("?")[0]) for m, p in graph_requests(emulator)] == [("GET", "/v1.0/applications")]
