"""Start-up: a run imports only the invoked command's module; `--help` loads neither azure-identity nor
msgraph-sdk. The module set is read from sys.modules when the CLI exits (never a time)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cypht_azure.cli import MODULES
from tests.tool.conftest import REPO, clean_environ

DUMP = """
import atexit, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write("\\n".join(sorted(sys.modules))))
sys.argv[0] = "cypht-azure"
from cypht_azure.start import main
main()
"""
HEAVY = ("azure", "msgraph", "msgraph_core", "kiota_abstractions", "kiota_http", "httpx", "msal", "requests",
         "cryptography", "cypht_azure.operations", "cypht_azure.emulator", "cypht_azure.graph",
         "cypht_azure.azcli", "cypht_azure.discovery")


def modules_after(tmp_path: Path, *argv: str) -> set[str]:
    out = tmp_path / "modules.txt"
    env = clean_environ(tmp_path)
    proc = subprocess.run([sys.executable, "-c", DUMP, str(out), *argv], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return set(out.read_text().split())


@pytest.mark.parametrize("command", list(MODULES))
def test_help_of_one_command_loads_only_that_command(tmp_path: Path, command: str) -> None:
    loaded = modules_after(tmp_path, command, "--help")
    commands = {m for m in loaded if m.startswith("cypht_azure.cli.") and m not in ("cypht_azure.cli.common", "cypht_azure.cli.output", "cypht_azure.cli.confirm",
                                                                                     "cypht_azure.cli.help")}
    assert commands == {f"cypht_azure.cli.{MODULES[command]}"}
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY or m.startswith(HEAVY))
    assert heavy == [], heavy


def test_root_help_lists_every_command_without_the_heavy_stacks(tmp_path: Path) -> None:
    loaded = modules_after(tmp_path, "--help")
    assert {f"cypht_azure.cli.{m}" for m in MODULES.values()} <= loaded
    assert not [m for m in loaded if m.split(".")[0] in HEAVY or m.startswith(HEAVY)]


def test_a_suggested_command_still_gets_the_options_of_this_run(tmp_path: Path) -> None:
    """Messages complete the commands they suggest with this run's --sandbox/--env-file: the suggested
    command, not loaded for this run, is loaded when its options are needed."""
    from cypht_azure.cli import load_command

    rotate = load_command("rotate-secret")
    assert rotate is not None and "env_file" in {p.name for p in rotate.params}
    assert load_command("no-such-command") is None
