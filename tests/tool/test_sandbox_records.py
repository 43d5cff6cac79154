"""A rehearsal (`--sandbox`) keeps its installation records beside the sandbox's tenant: it never lists,
renews or forgets the operator's real installations, and a real `.env` never gets a sandbox secret."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.tool.conftest import Cli
from tests.tool.test_provision import URL


def test_sandbox_runs_see_only_the_sandboxs_installations(cli: Cli, emulator: Any, tmp_path: Path) -> None:
    real = tmp_path / "real" / ".env"
    real.parent.mkdir()
    made = cli("provision", "--url", URL, "--env-file", str(real), "--no-verify", "--json")
    assert made.returncode == 0, made
    before = real.read_bytes()

    sandbox = ["--sandbox", "--sandbox-dir", str(tmp_path / "sandbox")]
    rehearsal = tmp_path / "rehearsal" / ".env"
    rehearsal.parent.mkdir()
    assert cli("provision", *sandbox, "--url", URL, "--env-file", str(rehearsal), "--no-verify").returncode == 0

    listed = cli("status", *sandbox, "--installations", "--json")
    assert listed.returncode == 0, listed
    assert [i["env_file"] for i in json.loads(listed.stdout)["installations"]] == [str(rehearsal)]

    renewed = cli("rotate-secret", *sandbox, "--all", "--json")
    assert renewed.returncode == 0, renewed
    assert [i["env_file"] for i in json.loads(renewed.stdout)["installations"]] == [str(rehearsal)]
    assert real.read_bytes() == before, "a real .env got a sandbox secret"

    gone = cli("deprovision", *sandbox, "--env-file", str(rehearsal), "--yes")
    assert gone.returncode == 0, gone
    operator = cli("status", "--installations", "--json")
    assert operator.returncode == 0, operator
    assert [i["env_file"] for i in json.loads(operator.stdout)["installations"]] == [str(real)]
