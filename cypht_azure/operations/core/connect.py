"""The sign-in options of one run, as the operations see them, and the connection they make.

Every command that takes `--env-file` reads the installation record the same way here
(`for_env_file`): the options the operator set now win, the record fills in the rest, the built-in
default comes last. Nothing in `.env` takes part.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from cypht_azure import auth, envdisk, envfile
from cypht_azure.operations.core.session import Connection
from cypht_azure.operations.unattended import record

# The sign-in options a record may fill in.
RECORDED = ("tenant", "cloud", "authority_host", "graph_url", "ca_file")


@dataclass(frozen=True)
class SignIn:
    auth: str = "auto"
    tenant: str | None = None
    cloud: str = "public"
    authority_host: str | None = None
    graph_url: str | None = None
    ca_file: str | None = None
    sandbox: bool = False
    sandbox_dir: Path | None = None
    timeout: float = 30.0
    # Options given on the command line or in the environment (not defaulted): what the record keeps,
    # and what a recorded setting must not override.
    user_set: frozenset[str] = frozenset()

    def given(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in RECORDED}

    def layered(self, rec: record.Record | None) -> SignIn:
        """These options with the record's under the ones given now."""
        return replace(self, **record.layer(self.given(), self.user_set, rec))


def for_env_file(sign_in: SignIn, env_file: Path, warn: Callable[[str], None] | None = None) -> SignIn:
    """The options of a run on `env_file`: the record of that `.env` under the ones given now. Settings
    an older version left in `.env` itself are named in a warning, never used."""
    if warn is not None:
        try:
            left = record.legacy_settings(envdisk.load(env_file))
        except (envfile.EnvFileError, OSError):
            left = {}  # the command reads .env again and says what is wrong with it
        if left:
            warn(record.legacy_warning(env_file, left))
    if sign_in.sandbox:
        return sign_in
    return sign_in.layered(record.load(env_file))


def records_folder(sign_in: SignIn) -> Path | None:
    """Sandbox runs keep their installation records beside the sandbox's tenant, never among the real
    ones (None: the operator's own folder, record.records_dir())."""
    if not sign_in.sandbox:
        return None
    from cypht_azure import sandbox

    return (sign_in.sandbox_dir or sandbox.default_dir()) / "installations"


def connection(sign_in: SignIn, prompt: Callable[[str], None] | None = None) -> Connection:
    """How to reach Entra and Graph (starting the sandbox emulator if asked)."""
    if sign_in.sandbox:
        from cypht_azure import sandbox
        from cypht_azure.secret import Secret

        info = sandbox.start(sign_in.sandbox_dir)
        endpoints = auth.resolve_endpoints(
            "public", authority_host=info.authority_host, graph_url=info.graph_url, ca_file=info.ca_file,
        )
        settings = auth.SignInSettings("sandbox", info.tenant_id, endpoints, interactive=False,
                                       timeout=sign_in.timeout)
        return Connection(settings, timeout=sign_in.timeout, sandbox=True, sandbox_lasting=info.lasting,
                          client_id=info.client_id, client_secret=Secret(info.client_secret))
    endpoints = auth.resolve_endpoints(
        sign_in.cloud, authority_host=sign_in.authority_host, graph_url=sign_in.graph_url, ca_file=sign_in.ca_file,
    )
    interactive = sys.stdin is not None and sys.stdin.isatty() and sys.stderr.isatty() and not os.environ.get("CI")
    settings = auth.SignInSettings(sign_in.auth, sign_in.tenant, endpoints, interactive=interactive,
                                   prompt=prompt or (lambda m: print(m, file=sys.stderr, flush=True)),
                                   timeout=sign_in.timeout)
    return Connection(settings, timeout=sign_in.timeout)
