"""The one invariant every guarantee test checks after every run of provision, rotate-secret or deprovision.

1. `.env` is byte-identical to before, or fully updated: it parses (ours and Cypht's own loader,
   symfony/dotenv under php-cli), every line the tool does not own is unchanged, the line endings and
   the file mode are kept, and no temporary file is left next to it;
2. the secret `.env` holds exists in the app and gets a token at the token endpoint (AADSTS7000229 — an
   app without a service principal — proves nothing and fails), unless the run was deprovision;
3. after a successful run, no secret the tool created for this `.env` is left that `.env` does not hold;
4. no secret and no token is shown (stdout, stderr; callers add log files and argv).

`check()` returns nothing and raises AssertionError listing every broken promise.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cypht_azure import cypht, envdisk, envfile
from cypht_azure.operations.core import envstate
from cypht_azure.operations.core.secrets import owners_for
from cypht_azure.operations.unattended import record
from tests.guarantees.harness import JWT_SHAPE, SECRET_SHAPE
from tests.tool.php import load_with_symfony

PROVIDER_KEYS = {p: cypht.provider_keys(p) for p in cypht.PROVIDERS}
# The provider blocks' keys, the settings older versions recorded (a run may remove them), and the
# pending-deploy-hooks mark.
OWNED = {k for keys in PROVIDER_KEYS.values() for k in keys.all()} | set(record.LEGACY_KEYS) | {
    envstate.DEPLOY_PENDING, "CYPHT_AZURE_INSTALLATION_ID"}
CORE = {p: (k.client_id, k.client_secret, k.secret_id, k.client_uri) for p, k in PROVIDER_KEYS.items()}


@dataclass
class Snapshot:
    """What the folder holding `.env` looked like before a run."""

    env_file: Path
    data: bytes | None
    mode: int | None
    owner: tuple[int, int] | None
    listing: set[str]
    secrets: set[str] = field(default_factory=set)  # every secret value known before the run


def snapshot(env_file: Path, *, known_secrets: set[str] | None = None) -> Snapshot:
    folder = env_file.parent
    listing = set(os.listdir(folder)) if folder.is_dir() else set()
    data = mode = owner = None
    if env_file.is_file():
        data = env_file.read_bytes()
        st = env_file.stat()
        mode, owner = stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid)
    secrets = set(known_secrets or ())
    if data is not None:
        secrets |= _secrets_in(data)
    return Snapshot(env_file, data, mode, owner, listing, secrets)


def _secrets_in(data: bytes) -> set[str]:
    try:
        doc = envfile.parse(data.decode("utf-8"))
    except (envfile.EnvFileError, UnicodeDecodeError):
        return set()
    return {v for k in PROVIDER_KEYS.values() if (v := doc.get(k.client_secret))}


def secret_accepted(emulator: Any, client_id: str, secret: str) -> tuple[bool, str]:
    """Ask the emulator's token endpoint, over HTTPS, as Cypht would (client credentials)."""
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import ClientSecretCredential

    info = emulator.info
    cred = ClientSecretCredential(info["tenant_id"], client_id, secret, authority=info["authority_host"],
                                  disable_instance_discovery=True, connection_verify=info["ca_file"], retry_total=0)
    try:
        cred.get_token("https://graph.microsoft.com/.default")
        return True, "token issued"
    except ClientAuthenticationError as exc:
        text = str(exc)
        return False, text.splitlines()[0] if text else type(exc).__name__


def _body_lines(doc: envfile.EnvDocument) -> list[str]:
    """The lines the tool does not own, without terminators: every owned assignment and the tool's
    block comment removed."""
    text = doc.render()
    lines = text.splitlines()
    drop: set[int] = set()
    for a in doc.assignments():
        if a.key in OWNED:
            drop.update(range(a.line - 1, a.end_line))
    for i, line in enumerate(lines):
        if line == envstate.BLOCK_COMMENT:  # the tool's block header and the blank line it puts before it
            drop.add(i)
            if i > 0 and not lines[i - 1].strip():
                drop.add(i - 1)
    return [line for i, line in enumerate(lines) if i not in drop]


def _terminators(data: bytes) -> set[bytes]:
    found = set()
    if b"\r\n" in data:
        found.add(b"\r\n")
    if b"\n" in data.replace(b"\r\n", b""):
        found.add(b"\n")
    return found


def check(
    emulator: Any, before: Snapshot, run: Any | None, *, command: str, after_success: bool | None = None,
    extra_secrets: set[str] | None = None, php: bool = True, require_changed: bool = False,
    debug: bool = False,
) -> None:
    """Assert the invariant after ``run`` (a harness.Run, or None for a killed run with no output).

    ``after_success`` (default: the run exited 0) also asserts promise 3: no orphaned secret.
    ``require_changed`` asserts the .env was fully updated (not merely left as it was).
    """
    problems: list[str] = []
    env_file = before.env_file
    succeeded = run is not None and run.returncode == 0
    if after_success is None:
        after_success = succeeded

    # ---- 1. .env: unchanged, or fully updated and loadable
    folder = env_file.parent
    listing = set(os.listdir(folder)) if folder.is_dir() else set()
    leftovers = sorted(n for n in listing - before.listing if n != env_file.name)
    if leftovers:
        problems.append(f"new files next to .env: {leftovers}")
    data = env_file.read_bytes() if env_file.is_file() else None
    doc: envfile.EnvDocument | None = None
    unchanged = data == before.data
    if not unchanged:
        if data is None:
            problems.append(".env disappeared")
        else:
            try:
                doc = envdisk.load(env_file)
            except envfile.EnvFileError as exc:
                problems.append(f".env does not parse after the run: {exc}")
    elif data is not None:
        try:
            doc = envdisk.load(env_file)
        except envfile.EnvFileError:
            doc = None  # unparseable input, left exactly as it was: allowed
    if require_changed and unchanged:
        problems.append(".env was expected to be updated but is unchanged")
    if doc is not None and not unchanged:
        old_doc = envfile.parse(before.data.decode("utf-8")) if before.data else envfile.parse("")
        if _body_lines(doc) != _body_lines(old_doc):
            problems.append(f"lines the tool does not own changed:\n  before={_body_lines(old_doc)}\n"
                            f"  after={_body_lines(doc)}")
        if before.data and data is not None and _terminators(before.data) and \
                _terminators(data) != _terminators(before.data):
            problems.append(f"line endings changed: {_terminators(before.data)} -> {_terminators(data)}")
        st = env_file.stat()
        # A new .env: the folder's owner and group (as root; the web server reads it), mode 0640.
        expected_mode = before.mode if before.mode is not None else envdisk.NEW_FILE_MODE
        if stat.S_IMODE(st.st_mode) != expected_mode:
            problems.append(f".env mode {oct(stat.S_IMODE(st.st_mode))}, expected {oct(expected_mode)}")
        if before.owner is not None and (st.st_uid, st.st_gid) != before.owner:
            problems.append(f".env owner changed {before.owner} -> {(st.st_uid, st.st_gid)}")
        folder = env_file.resolve().parent.stat()
        if before.owner is None and os.geteuid() == 0 and (st.st_uid, st.st_gid) != (folder.st_uid, folder.st_gid):
            problems.append(f"a new .env belongs to {(st.st_uid, st.st_gid)}, not to its folder's "
                            f"{(folder.st_uid, folder.st_gid)}")
        present = [p for p in cypht.PROVIDERS if doc.get(CORE[p][0])]
        if command == "deprovision":
            still = sorted(k for p in cypht.PROVIDERS for k in CORE[p] if doc.get(k) is not None)
            if still:
                problems.append(f"deprovision changed .env but left owned keys: {still}")
        else:
            if not present:
                problems.append(f"{command} changed .env but no provider block names a client ID")
            for p in present:
                missing = [k for k in CORE[p] if not doc.get(k)]
                if missing:
                    problems.append(f".env half-written: {p} lacks {missing}")
            if len({(doc.get(CORE[p][0]), doc.get(CORE[p][1]), doc.get(CORE[p][2])) for p in present}) > 1:
                problems.append(".env provider blocks disagree after the run")
        if php:
            wanted = sorted(doc.keys())
            loaded = load_with_symfony(env_file, wanted)
            if loaded != {k: doc.get(k) for k in wanted}:
                problems.append(f"Cypht's loader reads something else: {loaded}")

    # ---- 2. the secret .env holds exists in the app and works
    apps = {a["appId"]: a for a in emulator.directory.applications()}
    if doc is not None and command != "deprovision":
        for p in cypht.PROVIDERS:
            client_id, secret, key_id = (doc.get(k) for k in CORE[p][:3])
            if not client_id or not secret:
                continue
            app = apps.get(client_id)
            if app is None:
                problems.append(f"{p}: .env names client ID {client_id}, which is not a live app")
                continue
            keys = {str(c["keyId"]).lower() for c in app.get("passwordCredentials") or []}
            if (key_id or "").lower() not in keys:
                problems.append(f"{p}: the secret ID in .env ({key_id}) is not on the app ({sorted(keys)})")
            ok, why = secret_accepted(emulator, client_id, secret)
            if not ok:
                problems.append(f"{p}: the secret in .env does not work at the token endpoint: {why}")

    # ---- 3. after a successful run: no secret made for this .env that it does not hold
    if after_success:
        held = envstate.held_secret_ids(doc, doc.get(CORE["outlook"][0]) or "") if doc is not None else set()
        if doc is not None:
            for p in cypht.PROVIDERS:
                if doc.get(CORE[p][2]):
                    held.add(str(doc.get(CORE[p][2])).lower())
        for app in apps.values():
            credentials = list(app.get("passwordCredentials") or [])
            owners = owners_for(doc if doc is not None else envfile.parse(""), env_file, str(app["appId"]))
            for cred in owners.removable(credentials, keep=held):
                if str(cred["keyId"]).lower() not in held:
                    problems.append(f"orphaned secret {cred['keyId']} ({cred.get('displayName')}) on {app['appId']}")
        ours = [a for a in apps.values() if "cypht-azure" in (a.get("tags") or [])
                and a.get("uniqueName") and a.get("uniqueName") == _unique_name(doc)]
        if len(ours) > 1:
            problems.append(f"{len(ours)} registrations for one URL")

    # ---- 4. nothing secret shown
    if run is not None:
        secrets = set(before.secrets) | (extra_secrets or set()) | {emulator.info["admin_client_secret"]}
        if data is not None:
            secrets |= _secrets_in(data)
        problems += leaks(run.stdout + run.stderr, secrets, where="output")
        # CYPHT_AZURE_DEBUG=1 turns on every library's debug log, and azure-identity logs the
        # tracebacks of failed token requests there: allowed in that mode (and scanned for secrets).
        if run.returncode != 0 and "Traceback" in run.stderr and not debug:
            problems.append("a traceback was printed")

    if problems:
        detail = f"\n{run}" if run is not None else ""
        raise AssertionError(f"invariant broken after {command} ({dt.datetime.now():%H:%M:%S}):\n- "
                             + "\n- ".join(problems) + detail)


def _unique_name(doc: envfile.EnvDocument | None) -> str | None:
    if doc is None:
        return None
    uri = doc.get(CORE["outlook"][3]) or doc.get(CORE["office365"][3])
    return cypht.unique_name_for(uri) if uri else None


PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]*-----END CERTIFICATE-----")


def leaks(text: str, secrets: set[str], *, where: str) -> list[str]:
    """Every secret value, secret-shaped string or JWT-shaped string in ``text``."""
    found = [f"a known secret ({s[:3]}…) in {where}" for s in secrets if s and s in text]
    found += [f"a secret-shaped string ({m.group(0)[:6]}…) in {where}" for m in SECRET_SHAPE.finditer(text)]
    # Certificates are public, and base64 that long holds "eyJ" by chance (the CA bundle `--ca-file`
    # keeps in the cache folder is the whole public store): the JWT shape is looked for outside PEM
    # certificate blocks, whose strict base64 alphabet cannot hold a JWT's dots. Known secrets and the
    # secret shape are still searched for in the whole text.
    found += [f"a JWT-shaped string in {where}" for _ in JWT_SHAPE.finditer(PEM_CERTIFICATE.sub("", text))]
    return found


def cli_failure_is_clean(run: Any, *, codes: set[int], cause: tuple[str, ...]) -> list[str]:
    """A failed run: a documented exit code, an `error:` line naming the cause, no traceback."""
    from cypht_azure.errors import ExitCode

    problems = []
    if run.returncode not in codes:
        problems.append(f"exit code {run.returncode}, expected one of {sorted(codes)}")
    if run.returncode not in {int(c) for c in ExitCode}:
        problems.append(f"exit code {run.returncode} is not one of errors.ExitCode")
    if "error:" not in run.stderr.lower():  # ours, or Click's usage error for an out-of-range option
        problems.append("no 'error:' line on stderr")
    if "Traceback" in run.stderr:
        problems.append("a traceback was printed")
    if cause and not any(c.lower() in run.stderr.lower() for c in cause):
        problems.append(f"the message names none of {cause}")
    return problems
