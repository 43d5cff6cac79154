"""SIGKILL at every step boundary (checkpoints.py), then run again: the invariant holds.

The CLI is started with CYPHT_AZURE_TEST_PAUSE_AT=<step>; when it gets there it writes the pause file
and waits; the test kills it with SIGKILL (no clean-up code runs), checks what it left, runs the same
command again without pausing, and checks that the re-run finished the job and left no orphan.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cypht_azure import envdisk
from cypht_azure.checkpoints import STEPS
from tests.guarantees import invariant
from tests.guarantees.harness import (
    USER_LINES,
    base_env,
    command_args,
    command_line,
    run_cli,
    seed_provisioned,
    wait_for,
)

# The step boundaries each command passes, in order. test_every_step_is_a_crash_point keeps this
# list honest: every step in checkpoints.STEPS that the code calls must appear here.
REACHED = {
    "provision": ["env-locked", "signed-in", "app-ready", "secret-added", "env-written"],
    "rotate-secret": ["env-locked", "signed-in", "secret-added", "secret-verified", "env-written"],
    "deprovision": ["env-locked", "signed-in", "app-deleted"],
}
# Each command's commit point (docs/guarantees.md, "Commit points"): the last step boundary before it
# and the first after it. Before: .env is as it was; after: the change is made and stays.
COMMIT = {"provision": ("secret-added", "env-written"), "rotate-secret": ("secret-verified", "env-written"),
          "deprovision": ("signed-in", "app-deleted")}
CASES = [pytest.param(c, s, id=f"{c}-{s}") for c, steps in REACHED.items() for s in steps]


def test_every_step_is_a_crash_point() -> None:
    import re

    from tests.tool.conftest import REPO

    called = set()
    for source in (REPO / "cypht_azure" / "operations").rglob("*.py"):
        called |= set(re.findall(r'checkpoint\("([a-z-]+)"\)', source.read_text()))
    covered = {s for steps in REACHED.values() for s in steps}
    assert called <= set(STEPS)
    assert called == covered, f"steps without a crash test: {called - covered}; stale: {covered - called}"


def _kill_at(env: dict[str, str], args: list[str], step: str, folder: Path) -> tuple[str, str]:
    pause = folder / "paused"
    proc = subprocess.Popen(command_line(*args), env={**env, "CYPHT_AZURE_TEST_PAUSE_AT": step,
                                                      "CYPHT_AZURE_TEST_PAUSE_FILE": str(pause)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        reached = wait_for(pause, 60, proc)
        if not reached:
            out, err = proc.communicate(timeout=5)
            raise AssertionError(f"{args[0]} never reached step {step} (exit {proc.returncode})\n{out}\n{err}")
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return out, err


@pytest.mark.parametrize(("command", "step"), CASES)
def test_kill_at_step_then_run_again(emulator: Any, tmp_path: Path, command: str, step: str) -> None:
    env_file = tmp_path / "cypht" / ".env"
    seeded = None
    if command == "provision":
        env_file.parent.mkdir()
        env_file.write_text(USER_LINES)
    else:
        seeded = seed_provisioned(emulator, env_file)
    env = base_env(emulator, tmp_path / "home")
    before = invariant.snapshot(env_file)

    out, err = _kill_at(env, command_args(command, env_file), step, tmp_path)
    assert not invariant.leaks(out + err, before.secrets, where="output of the killed run")

    # Right after the kill: .env unchanged or fully updated, and the secret it holds works.
    invariant.check(emulator, before, None, command=command, after_success=False)
    last_before, first_after = COMMIT[command]
    if REACHED[command].index(step) <= REACHED[command].index(last_before):
        assert env_file.read_bytes() == before.data, f"before the commit point of {command}, .env is untouched"
        if command == "deprovision":
            assert seeded is not None and emulator.directory.get_application(app_id=seeded["client_id"]) is not None
    elif step == first_after:
        if command == "deprovision":
            assert seeded is not None and emulator.directory.get_application(app_id=seeded["client_id"]) is None, \
                "past its commit point the registration is deleted"
            assert env_file.read_bytes() == before.data, "the .env keys go in the step after the DELETE"
        else:
            assert env_file.read_bytes() != before.data, "past env-written the .env must hold the new secret"

    # The re-run finishes the job and removes whatever the killed run left in Graph.
    mid = invariant.snapshot(env_file, known_secrets=before.secrets)
    again = run_cli(env, *command_args(command, env_file, "--json"))
    assert again.returncode == 0, again
    invariant.check(emulator, mid, again, command=command, after_success=True)
    doc = envdisk.load(env_file)
    if command == "deprovision":
        assert seeded is not None
        assert emulator.directory.get_application(app_id=seeded["client_id"]) is None
        assert doc.get("OUTLOOK_CLIENT_ID") is None
    else:
        assert doc.get("OUTLOOK_CLIENT_SECRET") and doc.get("OFFICE365_CLIENT_SECRET")
        apps = [a for a in emulator.directory.applications() if "cypht-azure" in (a.get("tags") or [])]
        assert len(apps) == 1, "a re-run after a crash must not create a second registration"
        assert len(apps[0]["passwordCredentials"]) == 1, apps[0]["passwordCredentials"]
