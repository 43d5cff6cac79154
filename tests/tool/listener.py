"""An attacker's listener on 127.0.0.1: counts every connection and keeps every byte it receives.

With `tls=True` it speaks HTTPS with a certificate of its own CA (`ca_file`), the CA an attacker would
name in CYPHT_AZURE_CA_FILE; it answers every request 500."""

from __future__ import annotations

import socket
import ssl
import tempfile
import threading
from pathlib import Path

from cypht_azure.emulator import tls


class Listener:
    def __init__(self, *, tls_on: bool = True) -> None:
        self.connections = 0
        self.received = b""
        self._folder = Path(tempfile.mkdtemp(prefix="cypht-azure-attacker-"))
        self._folder.chmod(0o755)
        self.context: ssl.SSLContext | None = None
        self.ca_file = self._folder / "attacker-ca.pem"
        if tls_on:
            material = tls.generate()
            self.ca_file.write_bytes(material.ca_pem)
            self.ca_file.chmod(0o644)
            self.context = tls.server_context(material, self._folder)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.url = f"{'https' if tls_on else 'http'}://127.0.0.1:{self.port}"
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            stream = self.context.wrap_socket(conn, server_side=True) if self.context else conn
            data = stream.recv(65536)
            self.received += data
            stream.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            stream.close()
        except (OSError, ssl.SSLError):
            conn.close()

    def stop(self) -> None:
        self._stop = True
        self.sock.close()
