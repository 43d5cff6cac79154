"""`--sandbox`: run the real flow against the embedded emulator, with its tenant kept on disk."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


@dataclass(frozen=True)
class SandboxInfo:
    authority_host: str
    graph_url: str
    ca_file: str
    tenant_id: str
    client_id: str
    client_secret: str
    state_dir: str
    sign_in: str = "auto"
    lasting: bool = False  # a `cypht-azure emulator` serving the sandbox's folder: it outlives the command


def default_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "cypht-azure" / "sandbox"


def start(state_dir: Path | None, sign_in: str = "auto") -> SandboxInfo:
    """Start an emulator in this process on a free port; later commands see the same tenant.

    ``sign_in`` is the emulator's switch: ``auto`` (default here, since nobody can reach a page served
    only while one command runs) answers authorize requests at once for the ``login_hint`` account;
    ``page`` shows the sign-in page.
    """
    from cypht_azure.emulator import Emulator

    directory = Path(state_dir) if state_dir else default_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    running = serving(directory)
    if running is not None:
        return running
    emulator = Emulator(state_dir=directory, sign_in="auto" if sign_in == "auto" else "page").start()
    atexit.register(emulator.stop)
    info = emulator.info
    return SandboxInfo(
        authority_host=info["authority_host"], graph_url=info["graph_url"], ca_file=info["ca_file"],
        tenant_id=info["tenant_id"], client_id=info["admin_client_id"],
        client_secret=info["admin_client_secret"], state_dir=str(directory), sign_in=info["sign_in"],
    )


def serving(directory: Path) -> SandboxInfo | None:
    """The `cypht-azure emulator --state-dir DIRECTORY` serving the sandbox's folder, if one is running:
    its emulator.json names a live process whose port answers."""
    try:
        info = json.loads((directory / "emulator.json").read_text(encoding="utf-8"))
        pid, base = int(info["pid"]), str(info["authority_host"])
        os.kill(pid, 0)
        parts = urlsplit(base)
        with contextlib.closing(socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 443),
                                                         timeout=1.0)):
            pass
        return SandboxInfo(
            authority_host=base, graph_url=str(info["graph_url"]), ca_file=str(info["ca_file"]),
            tenant_id=str(info["tenant_id"]), client_id=str(info["admin_client_id"]),
            client_secret=str(info["admin_client_secret"]), state_dir=str(directory),
            sign_in=str(info.get("sign_in") or "page"), lasting=True,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
