"""`--sandbox`: run the real flow against the embedded emulator, with its tenant kept on disk."""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from pathlib import Path


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
    emulator = Emulator(state_dir=directory, sign_in="auto" if sign_in == "auto" else "page").start()
    atexit.register(emulator.stop)
    info = emulator.info
    return SandboxInfo(
        authority_host=info["authority_host"], graph_url=info["graph_url"], ca_file=info["ca_file"],
        tenant_id=info["tenant_id"], client_id=info["admin_client_id"],
        client_secret=info["admin_client_secret"], state_dir=str(directory), sign_in=info["sign_in"],
    )
