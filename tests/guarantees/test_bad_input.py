"""Bad input: every case gets a clear error naming the problem and a documented exit code, and changes
nothing — no write request reaches Graph (no request at all when the problem is local), `.env` is
byte-identical and no file appears next to it.

One valid input is here too on purpose: Windows line endings are valid for Cypht's loader, so that
case must succeed and keep CRLF.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cypht_azure import envdisk
from tests.guarantees import invariant
from tests.guarantees.harness import URL, USER_LINES, base_env, run_cli, seed_provisioned


@dataclass
class Case:
    id: str
    args: list[str]                 # {env} is replaced by the .env path, {app} by the seeded client ID
    code: int
    says: tuple[str, ...]           # the message names the problem (any of these, case-insensitive)
    env_text: str | bytes | None = USER_LINES   # what .env holds (None: no file)
    seeded: bool = False            # a provisioned app exists and .env names it
    local: bool = True              # found without any request
    extra_env: dict[str, str] = field(default_factory=dict)


P = ["provision", "--url", URL, "--env-file", "{env}"]
R = ["rotate-secret", "--env-file", "{env}"]
BOM = b"\xef\xbb\xbfAPP_NAME=Cypht\n"

CASES = [
    # --- URLs and redirect URIs
    Case("url-missing", ["provision", "--env-file", "{env}"], 2, ("--url",)),
    Case("url-empty", ["provision", "--url", "", "--env-file", "{env}"], 2, ("url",)),
    Case("url-no-scheme", ["provision", "--url", "mail.example.com", "--env-file", "{env}"], 2, ("https",)),
    Case("url-http", ["provision", "--url", "http://mail.example.com", "--env-file", "{env}"], 2, ("https",)),
    Case("url-ftp", ["provision", "--url", "ftp://mail.example.com", "--env-file", "{env}"], 2, ("https",)),
    Case("url-no-host", ["provision", "--url", "https://", "--env-file", "{env}"], 2, ("host",)),
    Case("url-space", ["provision", "--url", "https://mail example.com", "--env-file", "{env}"], 2, ("white space",)),
    Case("url-too-long", ["provision", "--url", "https://mail.example.com/" + "a" * 300, "--env-file", "{env}"],
         2, ("256", "long")),
    Case("url-forbidden-char", ["provision", "--url", "https://mail.example.com/c'ypht", "--env-file", "{env}"],
         2, ("character", "'")),
    Case("url-wildcard", ["provision", "--url", "https://*.example.com", "--env-file", "{env}"], 2,
         ("wildcard", "*", "host")),
    Case("redirect-uri-garbage", ["provision", "--redirect-uri", "not a uri", "--env-file", "{env}"], 2,
         ("redirect uri", "https")),
    Case("redirect-uri-twice", ["provision", "--redirect-uri", "https://m.example.com/", "--redirect-uri",
                                "https://m.example.com/", "--env-file", "{env}"], 2, ("twice",)),
    Case("redirect-uri-http", ["provision", "--redirect-uri", "http://m.example.com/", "--env-file", "{env}"], 2,
         ("https", "http")),
    Case("rotate-url-bad", ["rotate-secret", "--url", "ftp://x", "--env-file", "{env}"], 2, ("https",),
         env_text="APP_NAME=Cypht\n"),
    # --- durations
    Case("lifetime-zero", [*P, "--secret-lifetime", "0d"], 2, ("positive", "secret-lifetime")),
    Case("lifetime-negative", [*P, "--secret-lifetime", "-5d"], 2, ("secret-lifetime",)),
    Case("lifetime-too-long", [*P, "--secret-lifetime", "3y"], 2, ("730d", "2 years")),
    Case("lifetime-words", [*P, "--secret-lifetime", "a year"], 2, ("secret-lifetime",)),
    Case("lifetime-no-number", [*P, "--secret-lifetime", "d"], 2, ("secret-lifetime",)),
    Case("rotate-lifetime-too-long", [*R, "--secret-lifetime", "800d"], 2, ("2 years", "730d"), seeded=True),
    Case("if-expiring-bad", [*R, "--if-expiring-within", "soon"], 2, ("--if-expiring-within",), seeded=True),
    Case("verify-timeout-zero", [*P, "--verify-timeout", "0"], 2, ("verify-timeout",)),
    Case("timeout-negative", [*P, "--timeout", "-1"], 2, ("timeout",)),
    # --- options with a fixed set of values
    Case("provider-unknown", [*P, "--provider", "gmail"], 2, ("--provider",)),
    Case("provider-empty", [*P, "--provider", ""], 2, ("--provider",)),
    Case("audience-unknown", [*P, "--audience", "everyone"], 2, ("--audience",)),
    Case("auth-unknown", [*P, "--auth", "magic"], 3, ("--auth",)),
    Case("cloud-unknown", [*P, "--cloud", "mars"], 2, ("--cloud",)),
    Case("authority-http", [*P, "--authority-host", "http://login.example.test"], 2, ("https",)),
    Case("graph-url-http", [*P, "--graph-url", "http://graph.example.test/v1.0"], 2, ("https",)),
    Case("ca-file-missing", [*P, "--ca-file", "/nonexistent/ca.pem"], 2, ("--ca-file",)),
    Case("app-id-not-guid", [*P, "--app-id", "my-app"], 2, ("--app-id",)),
    Case("name-too-long", [*P, "--name", "x" * 200], 2, ("name", "long", "characters")),
    # --- tenants and apps that are not there
    Case("tenant-garbage", [*P, "--tenant", "not a tenant!"], 2, ("tenant id",)),
    Case("tenant-unknown", [*P, "--tenant", "00000000-0000-4000-8000-000000000000"], 3, ("tenant",), local=False),
    Case("app-id-other-tenant", [*P, "--app-id", str(uuid.UUID(int=7, version=4))], 5,
         ("does not exist", "another tenant"), local=False),
    Case("env-client-id-other-tenant", P, 5, ("does not exist", "another tenant"),
         env_text=f"OUTLOOK_CLIENT_ID={uuid.UUID(int=9, version=4)}\n", local=False),
    Case("env-names-deleted-app", R, 5, ("deleted", "not found", "restore"), seeded=True, local=False),
    Case("env-names-foreign-app", R, 2, ("not created by cypht-azure", "--app-id"), seeded=True, local=False),
    Case("restore-unknown", ["restore", "--app-id", str(uuid.UUID(int=11, version=4))], 5, ("no deleted",),
         local=False),
    # --- .env files
    Case("env-space-around-equals", P, 2, ("line 2", "spaces"), env_text="APP_NAME=Cypht\nKEY = value\n"),
    Case("env-unquoted-space", P, 2, ("quote",), env_text="APP_NAME=Cypht Mail\n"),
    Case("env-unterminated-quote", P, 2, ("quote",), env_text='APP_NAME="Cypht\n'),
    Case("env-command-substitution", P, 2, ("$(",), env_text="APP_NAME=$(whoami)\n"),
    Case("env-bad-name", P, 2, ("line 1", "name"), env_text="1APP=Cypht\n"),
    Case("env-bom", P, 2, ("byte-order mark", "bom"), env_text=BOM),
    Case("env-binary", P, 2, ("binary", "nul"), env_text=b"APP=1\n\x00\x01\x02\xff"),
    Case("env-not-utf8", P, 2, ("utf-8",), env_text=b"APP_NAME=Caf\xe9\n"),
    Case("env-huge", P, 2, ("larger than", "kib"), env_text="# " + "x" * (1024 * 1024) + "\n"),
    Case("env-providers-differ", R, 2, ("different apps",),
         env_text=f"OUTLOOK_CLIENT_ID={uuid.UUID(int=1, version=4)}\nOFFICE365_CLIENT_ID={uuid.UUID(int=2, version=4)}\n"),
    Case("env-providers-differ-provision", P, 2, ("different apps",),
         env_text=f"OUTLOOK_CLIENT_ID={uuid.UUID(int=1, version=4)}\nOFFICE365_CLIENT_ID={uuid.UUID(int=2, version=4)}\n"),
    Case("env-names-nothing-rotate", R, 2, ("names no client id",)),
    Case("env-missing-deprovision", ["deprovision", "--yes", "--env-file", "{env}"], 2, ("names no client id",),
         env_text=None),
    Case("env-fifo", P, 2, ("not a regular file",), env_text="FIFO"),
]


def test_enough_cases() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_changes_nothing(emulator: Any, tmp_path: Path, case: Case) -> None:
    folder = tmp_path / "cypht"
    env_file = folder / ".env"
    subs = {"{env}": str(env_file)}
    if case.seeded:
        seeded = seed_provisioned(emulator, env_file)
        subs["{app}"] = seeded["client_id"]
        if case.id == "env-names-deleted-app":
            from cypht_azure.emulator.models import SYSTEM

            emulator.directory.app_delete(SYSTEM, ("id", seeded["object_id"]))
        elif case.id == "env-names-foreign-app":
            from tests.tool.conftest import update_app

            update_app(emulator, seeded["object_id"], {"tags": []})
    else:
        folder.mkdir()
        if case.env_text == "FIFO":
            os.mkfifo(env_file)
        elif isinstance(case.env_text, bytes):
            env_file.write_bytes(case.env_text)
        elif case.env_text is not None:
            env_file.write_text(case.env_text)
    listing = sorted(os.listdir(folder))
    data = env_file.read_bytes() if env_file.is_file() else None
    emulator.clear_log()

    args = [subs.get(a, a) for a in case.args]
    run = run_cli(base_env(emulator, tmp_path / "home", **case.extra_env), *args, timeout=60)

    problems = invariant.cli_failure_is_clean(run, codes={case.code}, cause=case.says)
    graph_writes = [(e.method, e.path) for e in emulator.request_log if e.kind == "graph" and e.method != "GET"]
    if graph_writes:
        problems.append(f"write requests reached Graph: {graph_writes}")
    if case.local and emulator.request_log:
        problems.append(f"a local problem made requests: {[(e.method, e.path) for e in emulator.request_log]}")
    if sorted(os.listdir(folder)) != listing:
        problems.append(f"files changed next to .env: {listing} -> {sorted(os.listdir(folder))}")
    if data is not None and env_file.read_bytes() != data:
        problems.append(".env changed")
    leaks = invariant.leaks(run.stdout + run.stderr, {emulator.info["admin_client_secret"]}, where="output")
    assert not problems + leaks, "\n".join(problems + leaks) + f"\n{run}"


def test_windows_line_endings_are_valid_and_kept(emulator: Any, tmp_path: Path) -> None:
    env_file = tmp_path / "cypht" / ".env"
    env_file.parent.mkdir()
    env_file.write_bytes(USER_LINES.replace("\n", "\r\n").encode())
    before = invariant.snapshot(env_file)
    env = base_env(emulator, tmp_path / "home")
    run = run_cli(env, *[a.replace("{env}", str(env_file)) for a in P])
    assert run.returncode == 0, run
    data = env_file.read_bytes()
    assert data.startswith(USER_LINES.replace("\n", "\r\n").encode())
    assert b"\n" not in data.replace(b"\r\n", b""), "every line ends in CRLF"
    invariant.check(emulator, before, run, command="provision", require_changed=True)
    rotated = run_cli(env, *[a.replace("{env}", str(env_file)) for a in R])
    assert rotated.returncode == 0, rotated
    assert b"\n" not in env_file.read_bytes().replace(b"\r\n", b"")
    assert envdisk.load(env_file).get("OUTLOOK_CLIENT_SECRET")
