"""The real `--json` output of every command validates against the schemas in docs/schemas/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.docs.test_json_schemas import load, validate
from tests.tool.conftest import Cli
from tests.tool.test_provision import provision


def check(doc: Any, schema: str) -> None:
    problems = validate(doc, load(schema))
    assert problems == [], problems


def test_every_command_matches_its_schema(cli: Cli, env_file: Path, emulator: Any) -> None:
    env_file.parent.mkdir()
    first = provision(cli, env_file)
    assert first.returncode == 0, first
    check(first.json, "provision")
    dry = provision(cli, env_file, "--dry-run")
    check(dry.json, "provision")

    for args, schema in (
        (["status", "--verify-secret"], "status"),
        (["status", "--fail-within", "400d"], "status"),
        (["rotate-secret", "--if-expiring-within", "1d"], "rotate-secret"),
        (["rotate-secret"], "rotate-secret"),
        (["rotate-secret", "--dry-run"], "rotate-secret"),
    ):
        r = cli(*args, "--env-file", str(env_file), "--json")
        assert r.returncode in (0, 6), r
        check(r.json, schema)

    everything = cli("status", "--all", "--json")
    assert everything.returncode == 0, everything
    check(everything.json, "status-all")

    client_id = first.json["client_id"]
    gone = cli("deprovision", "--env-file", str(env_file), "--yes", "--json")
    assert gone.returncode == 0, gone
    check(gone.json, "deprovision")
    back = cli("restore", "--app-id", client_id, "--json")
    assert back.returncode == 0, back
    check(back.json, "restore")


def test_errors_match_the_error_schema(cli: Cli, env_file: Path) -> None:
    env_file.parent.mkdir()
    for args, code in (
        (["provision", "--url", "https://x.example/?page=home", "--env-file", str(env_file)], 2),
        (["status", "--env-file", str(env_file)], 2),
        (["restore", "--app-id", "00000000-0000-0000-0000-000000000001"], 5),
    ):
        r = cli(*args, "--json")
        assert r.returncode == code, r
        check(r.json, "error")
        assert r.json["error"]["exit_code"] == code
