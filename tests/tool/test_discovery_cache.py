"""The tenant's OpenID configuration is read once per host: kept in the operator's cache folder.

Each test counts the discovery requests in the emulator's log. A copy that is stale, not the
operator's, planted through a symlink, or that would send the credential elsewhere is never used:
the run reads the document again (and signs in where the authority is).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.tool.conftest import Cli
from tests.tool.test_provision import URL

IS_ROOT = os.geteuid() == 0


def discoveries(emulator: Any) -> int:
    return sum(1 for e in emulator.request_log if e.kind == "openid")


def run(cli: Cli, env_file: Path, emulator: Any) -> int:
    """provision (the first time) or rotate-secret; the discovery requests it made."""
    emulator.clear_log()
    argv = ("rotate-secret",) if env_file.exists() else ("provision", "--url", URL)
    r = cli(*argv, "--env-file", str(env_file), "--no-verify" if argv[0] == "provision" else "--quiet")
    assert r.returncode == 0, r
    return discoveries(emulator)


def cached(home: Path) -> list[Path]:
    return sorted((home / ".cache" / "cypht-azure" / "discovery").glob("doc-*.json"))


def test_second_run_on_the_host_makes_no_discovery_request(cli: Cli, emulator: Any, env_file: Path,
                                                           home: Path) -> None:
    env_file.parent.mkdir()
    assert run(cli, env_file, emulator) == 1
    (kept,) = cached(home)
    assert kept.stat().st_mode & 0o777 == 0o600 and kept.parent.stat().st_mode & 0o777 == 0o700
    # rotate-secret: sign-in and the check of the new secret, both without reading the document again
    assert run(cli, env_file, emulator) == 0
    # the floor of a rotation: token, read of the app, the new secret, the check, the removal
    seen = [(e.kind, e.method, e.path.split("?")[0].rsplit("/", 1)[-1]) for e in emulator.request_log
            if e.kind != "admin"]
    assert [(k, m, last.split("(")[0]) for k, m, last in seen] == [
        ("token", "POST", "token"), ("graph", "GET", "applications"), ("graph", "POST", "addPassword"),
        ("token", "POST", "token"), ("graph", "POST", "removePassword")], seen


def _tamper(path: Path, change: Any) -> None:
    entry = json.loads(path.read_text())
    change(entry)
    path.write_text(json.dumps(entry))


@pytest.mark.parametrize("how", ["expired", "future", "token-endpoint-elsewhere", "issuer-other-tenant",
                                 "issuer-elsewhere", "not-json"])
def test_a_stale_or_foreign_document_is_read_again(cli: Cli, emulator: Any, env_file: Path, home: Path,
                                                   how: str) -> None:
    env_file.parent.mkdir()
    assert run(cli, env_file, emulator) == 1
    (kept,) = cached(home)
    tenant = emulator.info["tenant_id"]
    changes = {
        "expired": lambda e: e.update(fetched=e["fetched"] - 2 * 86400),
        "future": lambda e: e.update(fetched=e["fetched"] + 3600),
        "token-endpoint-elsewhere": lambda e: e["body"].update(token_endpoint=f"https://attacker.example/{tenant}/t"),
        "issuer-other-tenant": lambda e: e["body"].update(
            issuer=e["body"]["issuer"].replace(tenant, "00000000-0000-0000-0000-000000000000")),
        "issuer-elsewhere": lambda e: e["body"].update(issuer=f"https://attacker.example/{tenant}/v2.0"),
    }
    if how == "not-json":
        kept.write_text("{")
    else:
        _tamper(kept, changes[how])
    assert run(cli, env_file, emulator) == 1  # read again, and (being good) kept again
    assert run(cli, env_file, emulator) == 0


def test_a_planted_document_is_not_used(cli: Cli, emulator: Any, env_file: Path, home: Path, tmp_path: Path) -> None:
    """A symlink in place of the copy, a copy another user may write, a folder others may write: all ignored."""
    env_file.parent.mkdir()
    assert run(cli, env_file, emulator) == 1
    (kept,) = cached(home)
    planted = tmp_path / "planted.json"
    planted.write_text(kept.read_text())
    planted.chmod(0o600)
    original = planted.read_text()
    kept.unlink()
    kept.symlink_to(planted)
    assert run(cli, env_file, emulator) == 1  # the symlink is not followed ...
    assert not kept.is_symlink() and planted.read_text() == original  # ... nor written through
    assert run(cli, env_file, emulator) == 0
    kept.chmod(0o644)  # readable by others: written by someone else or not ours to trust
    assert run(cli, env_file, emulator) == 1
    kept.parent.chmod(0o777)
    assert run(cli, env_file, emulator) == 1
    assert run(cli, env_file, emulator) == 1  # nothing is kept in a folder others may write


@pytest.mark.skipif(not IS_ROOT, reason="needs root to play the web server user")
def test_a_document_owned_by_the_web_server_user_is_not_used(cli: Cli, emulator: Any, env_file: Path,
                                                             home: Path) -> None:
    env_file.parent.mkdir()
    assert run(cli, env_file, emulator) == 1
    (kept,) = cached(home)
    subprocess.run(["chown", "www-data", str(kept)], check=True)
    assert run(cli, env_file, emulator) == 1
    subprocess.run(["chown", "-R", "www-data", str(kept.parent)], check=True)
    assert run(cli, env_file, emulator) == 1
