"""A webhook receiver on loopback for --notify: keeps each JSON body, answers with the statuses given."""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any


class WebhookReceiver:
    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])   # answered in turn; 204 when used up (only 204s are kept)
        self.bodies: list[dict[str, Any]] = []
        self.raw: list[str] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                text = self.rfile.read(int(self.headers["Content-Length"])).decode("utf-8", "replace")
                status = receiver.statuses.pop(0) if receiver.statuses else 204
                receiver.raw.append(text)
                if status == 204:
                    receiver.bodies.append(json.loads(text))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook/token-in-path"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
