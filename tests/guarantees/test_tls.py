"""TLS: certificate verification is never turned off. A CA that did not sign the endpoint's certificate,
or no --ca-file at all, fails with a clear message and exit code before any request reaches Graph."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.guarantees import invariant
from tests.guarantees.harness import URL, USER_LINES, base_env, run_cli, seed_provisioned
from tests.tool.conftest import REPO


def _foreign_ca(tmp_path: Path) -> Path:
    import trustme

    path = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


@pytest.mark.parametrize("command", ["provision", "rotate-secret", "status", "deprovision"])
@pytest.mark.parametrize("trust", ["foreign-ca", "no-ca-file", "foreign-ca-in-ssl-env"])
def test_untrusted_endpoint_is_refused(emulator: Any, tmp_path: Path, command: str, trust: str) -> None:
    env_file = tmp_path / "cypht" / ".env"
    if command == "provision":
        env_file.parent.mkdir()
        env_file.write_text(USER_LINES)
        args = ["provision", "--url", URL]
    else:
        seed_provisioned(emulator, env_file)
        args = [command] + (["--yes"] if command == "deprovision" else [])
    extra = {"CYPHT_AZURE_CA_FILE": str(_foreign_ca(tmp_path))}
    if trust == "no-ca-file":
        extra = {"CYPHT_AZURE_CA_FILE": ""}
    if trust == "foreign-ca-in-ssl-env":  # the environment's trust store does not trust the emulator either
        extra = {"CYPHT_AZURE_CA_FILE": "", "SSL_CERT_FILE": str(_foreign_ca(tmp_path)),
                 "REQUESTS_CA_BUNDLE": str(_foreign_ca(tmp_path))}
    env = base_env(emulator, tmp_path / "home", **extra)
    if not extra.get("CYPHT_AZURE_CA_FILE"):
        env.pop("CYPHT_AZURE_CA_FILE")
    before = invariant.snapshot(env_file)
    emulator.clear_log()
    run = run_cli(env, *args, "--env-file", str(env_file), "--json")
    problems = invariant.cli_failure_is_clean(run, codes={3}, cause=("not trusted", "certificate"))
    assert "--ca-file" in run.stderr, "the message says how to trust a private endpoint"
    assert not problems, "\n".join(problems) + f"\n{run}"
    # The handshake fails, so the emulator never sees a request, let alone a Graph one.
    assert [e for e in emulator.request_log if e.kind in ("graph", "token")] == []
    invariant.check(emulator, before, run, command=command if command != "status" else "rotate-secret", php=False)
    assert env_file.read_bytes() == before.data


def test_the_code_never_disables_verification() -> None:
    """No code path turns verification off, whatever the options."""
    pattern = re.compile(r"verify\s*=\s*False|CERT_NONE|check_hostname\s*=\s*False|connection_verify\s*=\s*False"
                         r"|_create_unverified_context|PYTHONHTTPSVERIFY|CURL_CA_BUNDLE")
    offenders = []
    for source in (REPO / "cypht_azure").rglob("*.py"):
        if "emulator" in source.parts:
            continue  # the emulator is the server side
        for number, line in enumerate(source.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{source.relative_to(REPO)}:{number}: {line.strip()}")
    assert offenders == []


@pytest.mark.parametrize("where", ["ssl-env", "cache-unwritable"])
def test_ca_file_adds_to_the_system_store(emulator: Any, tmp_path: Path, where: str) -> None:
    """--ca-file is an extra CA: with the emulator's CA in the system store (SSL_CERT_FILE for httpx,
    REQUESTS_CA_BUNDLE for azure-identity) and an unrelated CA as --ca-file, sign-in, Graph and the
    secret check at the token endpoint all still trust the emulator."""
    env_file = tmp_path / "cypht" / ".env"
    seed_provisioned(emulator, env_file)
    ca = emulator.info["ca_file"]
    cache = tmp_path / "cache"
    extra_ca = _foreign_ca(tmp_path)
    env = base_env(emulator, tmp_path / "home", CYPHT_AZURE_CA_FILE=str(extra_ca),
                   SSL_CERT_FILE=ca, REQUESTS_CA_BUNDLE=ca, XDG_CACHE_HOME=str(cache))
    if where == "cache-unwritable":
        cache.write_text("not a folder")  # the bundle goes to a private temporary folder instead
    before = invariant.snapshot(env_file)
    emulator.clear_log()
    run = run_cli(env, "status", "--verify-secret", "--env-file", str(env_file), "--json")
    assert run.returncode == 0, run
    assert json.loads(run.stdout)["secret_verified"] is True
    # the admin's sign-in and the .env secret's check both reached the token endpoint
    assert len([e for e in emulator.request_log if e.kind == "token"]) >= 2
    assert env_file.read_bytes() == before.data
    leftovers = list((tmp_path / "home" / "tmp").iterdir())
    if where == "ssl-env":
        # the bundle, and the tenant's discovery document kept for the next run (discovery.py): no temporary file
        bundles = [b for b in (cache / "cypht-azure").iterdir() if b.name != "discovery"]
        assert [b.name for b in bundles if not b.name.startswith("ca-bundle-")] == [], "no temporary file left"
        assert len(bundles) == 1 and stat.S_IMODE(bundles[0].stat().st_mode) == 0o644
        assert bundles[0].read_text() == Path(ca).read_text().rstrip("\n") + "\n" + extra_ca.read_text()
    assert leftovers == [], "the temporary bundle is removed at exit"
