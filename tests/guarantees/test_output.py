"""Output can never change what is applied (issue 17, item 2).

A reader that goes away (`| head -n K`, a pipe closed mid-run), a full disk (`> /dev/full`) or a closed
stderr (`2>&-`) must not make the run undo the secret it stored: before `cli/output.py`, the EPIPE of the
step line printed right after the `.env` write ran the undo stack and removed the secret `.env` held.
Each run here is checked against the emulator and the disk, not against what the tool printed: the
secret in `.env` exists on the app and gets a token, no orphan is left, and the exit code is 0.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.guarantees import invariant
from tests.guarantees.harness import Run, base_env, command_args, command_line, run_cli, seed_provisioned
from tests.tool.conftest import REPO


def _shell(env: dict[str, str], script: str, args: list[str], **popen: Any) -> Run:
    """`script` run by bash with "$@" the CLI's command line; its exit code is the CLI's (PIPESTATUS)."""
    proc = subprocess.run(["bash", "-c", script, "cypht-azure", *command_line(*args)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120, **popen)
    return Run(tuple(args), proc.returncode, proc.stdout, proc.stderr, 0.0)


@pytest.fixture
def rotation(emulator: Any, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    env_file = tmp_path / "cypht" / ".env"
    seed_provisioned(emulator, env_file)
    return env_file, base_env(emulator, tmp_path / "home")


def test_head_n_k_for_every_k_never_undoes_the_commit(emulator: Any, rotation: tuple[Path, dict[str, str]]) -> None:
    env_file, env = rotation
    full = run_cli(env, *command_args("rotate-secret", env_file))
    assert full.returncode == 0, full
    lines = full.stdout.splitlines()
    assert len(lines) >= 8, full
    for k in range(len(lines) + 1):
        before = invariant.snapshot(env_file)
        run = _shell(env, f'"$@" | head -n {k}; exit "${{PIPESTATUS[0]}}"', command_args("rotate-secret", env_file))
        assert run.returncode == 0, f"| head -n {k}: {run}"
        assert len(run.stdout.splitlines()) == k, f"| head -n {k}: {run}"
        assert "Traceback" not in run.stderr and "BrokenPipe" not in run.stderr, run
        invariant.check(emulator, before, run, command="rotate-secret", after_success=True, require_changed=True,
                        php=k == 3)


@pytest.mark.parametrize("command", ["provision", "rotate-secret"])
def test_stdout_to_dev_full(emulator: Any, tmp_path: Path, command: str) -> None:
    env_file = tmp_path / "cypht" / ".env"
    if command == "provision":
        env_file.parent.mkdir()
        env_file.write_text("APP_NAME=Cypht\n")
    else:
        seed_provisioned(emulator, env_file)
    env = base_env(emulator, tmp_path / "home")
    before = invariant.snapshot(env_file)
    with open("/dev/full", "w") as full:
        proc = subprocess.run(command_line(*command_args(command, env_file)), env=env, cwd=REPO, stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    run = Run((command,), proc.returncode, "", proc.stderr, 0.0)
    assert run.returncode == 0, run
    assert "Traceback" not in run.stderr, run
    invariant.check(emulator, before, run, command=command, after_success=True, require_changed=True)


@pytest.mark.parametrize("extra", [[], ["--verbose"]], ids=["plain", "verbose"])
def test_stderr_closed(emulator: Any, rotation: tuple[Path, dict[str, str]], extra: list[str]) -> None:
    env_file, env = rotation
    before = invariant.snapshot(env_file)
    run = _shell(env, 'exec "$@" 2>&-', command_args("rotate-secret", env_file, *extra))
    assert run.returncode == 0, run
    assert "Rotated the client secret" in run.stdout, run
    invariant.check(emulator, before, run, command="rotate-secret", after_success=True, require_changed=True)


def test_stderr_closed_failure_keeps_its_exit_code(emulator: Any, rotation: tuple[Path, dict[str, str]]) -> None:
    env_file, env = rotation
    run = _shell(env, 'exec "$@" 2>&-', command_args("rotate-secret", env_file, "--secret-lifetime", "0d"))
    assert run.returncode == 2, run
    assert emulator.request_log == [], "an input error is found before any request"


def test_pipe_reader_exits_mid_run(emulator: Any, rotation: tuple[Path, dict[str, str]]) -> None:
    """The reader takes the first line, then goes away while the run is between its steps."""
    env_file, env = rotation
    before = invariant.snapshot(env_file)
    emulator.faults.latency(1.0, method="POST", path=r"/addPassword$", kind="graph", times=1)
    proc = subprocess.Popen(command_line(*command_args("rotate-secret", env_file)), env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # the reader exits: every later write gets EPIPE
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=120)
    run = Run(("rotate-secret",), code, first.decode(), err, 0.0)
    assert first == b"Applying the plan:\n", run
    assert code == 0, run
    assert "Traceback" not in err, run
    invariant.check(emulator, before, run, command="rotate-secret", after_success=True, require_changed=True)
