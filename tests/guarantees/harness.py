"""Running the real CLI against the emulator, seeding state, and targeting faults at one request.

Everything here drives the tool from the outside: a subprocess running `python -m cypht_azure` over
real HTTPS against the emulator. Nothing of azure-identity, msgraph-sdk or httpx is mocked.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cypht_azure import cypht, envdisk
from cypht_azure.emulator import Emulator, FaultRule
from tests.tool.conftest import REPO, admin_env

URL = "https://mail.example.com"
# What a user's .env holds before the tool touches it: lines the tool must never change.
USER_LINES = (
    "# Cypht configuration\n"
    "APP_NAME=Cypht\n"
    "export SESSION_TYPE=PHP # keep this comment\n"
    "\n"
    "DB_PASS='p@ss word'\n"
    'LDAP_BASE_DN="dc=example,dc=com"\n'
)
# Entra-style client secrets: 3 characters, a digit, "Q~", then more (the emulator makes them the same way).
SECRET_SHAPE = re.compile(r"[A-Za-z0-9._~-]{3}[0-9]Q~[A-Za-z0-9._~-]{20,}")
JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{4,}")
FAST_TIMEOUT = "2"  # CYPHT_AZURE_TIMEOUT for fault cases: a hang costs 2 s per attempt


@dataclass
class Run:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)

    def __str__(self) -> str:
        return (f"cypht-azure {' '.join(self.args)} -> {self.returncode} in {self.seconds:.1f}s\n"
                f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}")


def base_env(emulator: Emulator, home: Path, **extra: str) -> dict[str, str]:
    """The environment of a run signed in as the emulator's administrator (a service principal)."""
    home.mkdir(parents=True, exist_ok=True)
    env = admin_env(emulator, home)
    env["TMPDIR"] = str(home / "tmp")
    (home / "tmp").mkdir(exist_ok=True)
    env.update(extra)
    return env


def command_line(*args: str) -> list[str]:
    return [sys.executable, "-m", "cypht_azure", *args]


def run_cli(env: dict[str, str], *args: str, cwd: Path | None = None, timeout: float = 120,
            stdin: str | None = None, prefix: list[str] | None = None) -> Run:
    started = time.monotonic()
    proc = subprocess.run([*(prefix or []), *command_line(*args)], env=env, cwd=cwd or REPO, capture_output=True,
                          text=True, timeout=timeout, input=stdin if stdin is not None else "")
    return Run(tuple(args), proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)


# --------------------------------------------------------------------------- state without the CLI


def seed_provisioned(emulator: Emulator, env_file: Path, *, url: str = URL, lifetime_days: int = 20,
                     prefix: str = USER_LINES) -> dict[str, Any]:
    """The state `provision` leaves, made in-process (fast): the registration `prepare()` plans, its
    service principal, one secret named for this .env, and the .env written with the tool's own update
    logic."""
    from cypht_azure.emulator.models import SYSTEM
    from cypht_azure.operations.core import envstate
    from cypht_azure.operations.core.provision import ProvisionRequest, prepare
    from cypht_azure.operations.core.secrets import new_secret_name
    from cypht_azure.secret import Secret

    plan = prepare(ProvisionRequest(url=url, env_file=env_file))
    app = emulator.directory.app_create(SYSTEM, dict(plan.body), unique_name=plan.unique_name)
    emulator.directory.create_service_principal(app["appId"])
    now = dt.datetime.now(dt.timezone.utc)
    key, secret = emulator.directory.add_password(
        app["id"], display_name=new_secret_name(now, env_file), end=now + dt.timedelta(days=lifetime_days))
    env_file.parent.mkdir(parents=True, exist_ok=True)
    env_file.write_text(prefix)
    doc = envdisk.load(env_file)
    updates = envstate.updates_for(doc, list(cypht.PROVIDERS), client_id=app["appId"], secret=Secret(secret),
                                   key_id=key.lower(), redirect_uri=plan.primary_uri)
    envdisk.write_atomic(env_file, doc.updated(updates, block_comment=envstate.BLOCK_COMMENT).render())
    return {"client_id": app["appId"], "object_id": app["id"], "key_id": key.lower(), "secret": secret}


# --------------------------------------------------------------------------- requests and faults

_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


@dataclass(frozen=True)
class RequestSpec:
    """One request a command makes, as seen in the emulator's log of a clean run."""

    command: str
    index: int         # position in the clean run
    kind: str          # token | openid | graph
    method: str
    pattern: str       # regex for the path (ids generalised)
    occurrence: int    # 1 = first request of the run matching kind+method+pattern
    role: str          # sign-in | verify | graph
    label: str         # readable: "POST addPassword"
    after_create: bool = False  # an earlier request of the run created an object (201)

    @property
    def id(self) -> str:
        """Stable whatever order concurrent requests arrived in: no position, the occurrence instead."""
        return f"{self.command}-{self.role}-{self.label.replace(' ', '_')}-{self.occurrence}"

    @property
    def canonical(self) -> tuple[int, str, str, int]:
        """A sort key independent of arrival order.

        The tool sends some requests at the same time (creating the service principal alongside the
        secret), so two clean runs may log them in either order; each pytest-xdist worker derives the
        matrix on its own and all must collect the same list, so the matrix is ordered by phase, then
        by request, never by position.
        """
        return (_PHASES.index(self.role), self.label, self.pattern, self.occurrence)


_PHASES = ("sign-in", "graph", "verify")


def path_pattern(path: str) -> str:
    """/v1.0/applications/<guid>/addPassword -> an anchored regex matching any id there."""
    path = path.split("?", 1)[0]
    pieces = re.split(rf"({_GUID}|uniqueName='[^']*'|appId='[^']*')", path)
    out = []
    for piece in pieces:
        if re.fullmatch(_GUID, piece):
            out.append(_GUID)
        elif piece.startswith("uniqueName='"):
            out.append(r"uniqueName='[^']*'")
        elif piece.startswith("appId='"):
            out.append(r"appId='[^']*'")
        else:
            out.append(re.escape(piece))
    return "^" + "".join(out) + "$"


def readable(kind: str, method: str, path: str) -> str:
    path = path.split("?", 1)[0]
    if kind == "openid":
        return f"{method} openid-configuration"
    if kind == "token":
        return f"{method} token"
    last = re.sub(rf"\(({_GUID}|uniqueName='[^']*'|appId='[^']*')\)", lambda m: "(" + m.group(1).split("=")[0] + ")",
                  path.rsplit("/", 1)[-1])
    return f"{method} {'application' if re.fullmatch(_GUID, last) else last}"


def derive_requests(command: str, log: list[Any], admin_client_id: str) -> list[RequestSpec]:
    """Every request of a clean run, with a pattern, its occurrence and its role."""
    seen: dict[tuple[str, str, str], int] = {}
    specs: list[RequestSpec] = []
    phase = "sign-in"
    created = False
    for index, entry in enumerate(log):
        if entry.kind not in ("token", "openid", "graph"):
            continue
        pattern = path_pattern(entry.path)
        key = (entry.kind, entry.method, pattern)
        seen[key] = seen.get(key, 0) + 1
        if entry.kind == "graph":
            phase = "verify"  # identity requests after the first Graph call check the new secret
            role = "graph"
        elif entry.kind == "token":
            role = "sign-in" if entry.client_id == admin_client_id else "verify"
        else:
            role = phase
        specs.append(RequestSpec(command, index, entry.kind, entry.method, pattern, seen[key], role,
                                 readable(entry.kind, entry.method, entry.path), created))
        created = created or (entry.kind == "graph" and entry.status == 201)
    return specs


@dataclass
class NthRule(FaultRule):
    """A fault rule that lets the first ``skip`` matching requests through.

    The emulator's rules match on method, path and kind only; the sign-in and the secret check hit the
    same token path, so the matrix targets a request by its occurrence in the run instead.
    """

    skip: int = 0

    def matches(self, req: Any, kind: str) -> bool:
        if not super().matches(req, kind):
            return False
        if self.skip > 0:
            self.skip -= 1
            return False
        return True


def add_fault(emulator: Emulator, spec: RequestSpec, *, times: int | None, **fault: Any) -> FaultRule:
    """Inject a fault on exactly the request ``spec`` describes (and its retries)."""
    template = emulator.faults.add(spec.method, spec.pattern, kind=spec.kind, times=times, **fault)
    emulator.faults.remove(template.id)  # built by the emulator's own validation, then re-added as NthRule
    fields = {f.name: getattr(template, f.name) for f in dataclasses.fields(FaultRule)
              if f.init and f.name not in ("id", "fired")}
    rule = NthRule(**fields, skip=spec.occurrence - 1)
    faults = emulator.faults
    with faults._lock:  # the public add() has no occurrence matcher (see docs/guarantees.md)
        faults._rules.append(rule)
    return rule


# --------------------------------------------------------------------------- clean runs


def clean_run_log(command: str) -> list[RequestSpec]:
    """Run `command` once without faults against a fresh emulator; derive its requests from the log."""
    return derive_requests(command, *clean_run_entries(command))


def clean_run_entries(command: str) -> tuple[list[Any], str]:
    """The emulator's request log of one clean run of `command`, and the admin's client ID."""
    with Emulator() as emu, tempfile.TemporaryDirectory(prefix="cypht-azure-clean-") as tmp:
        folder = Path(tmp)
        env_file = folder / "cypht" / ".env"
        env = base_env(emu, folder / "home")
        if command == "provision":
            env_file.parent.mkdir()
            env_file.write_text(USER_LINES)
        else:
            seed_provisioned(emu, env_file)
        emu.clear_log()
        run = run_cli(env, *command_args(command, env_file))
        if run.returncode != 0:
            raise RuntimeError(f"the clean run failed, so no fault matrix can be derived:\n{run}")
        return list(emu.request_log), emu.info["admin_client_id"]


def command_args(command: str, env_file: Path, *extra: str) -> list[str]:
    if command == "provision":
        return ["provision", "--url", URL, "--env-file", str(env_file), *extra]
    if command == "rotate-secret":
        return ["rotate-secret", "--env-file", str(env_file), *extra]
    if command == "deprovision":
        return ["deprovision", "--env-file", str(env_file), "--yes", *extra]
    raise ValueError(command)


def wait_for(path: Path, seconds: float, proc: subprocess.Popen[Any] | None = None) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists():
            return True
        if proc is not None and proc.poll() is not None:
            return path.exists()
        time.sleep(0.02)
    return False


def environ_without_tmp(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k != "TMPDIR"}


def is_root() -> bool:
    return os.geteuid() == 0
