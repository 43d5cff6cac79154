"""Signals (issue 17, items 3 and 4): SIGTERM and SIGHUP act as Ctrl-C, and an interruption tells the truth.

Before the commit point a signal undoes what the run created (exit 130 for SIGINT, 143 for SIGTERM,
129 for SIGHUP) and says so; after it, nothing is undone, no hook is started anew, and the run exits
with the same code and says what it left for the next run. Ctrl-C during start-up (imports) prints one
line, never a traceback. When a request was in flight (addPassword, creating the registration), the
message says what it may have made and that the next run deals with it.

The signal is sent at exact points: with CYPHT_AZURE_TEST_ACT_AT (tests/guarantees/inject) the CLI waits
at a checkpoint until the test has signalled it, then goes on; the emulator's latency fault holds a
request in flight while the test signals.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from cypht_azure import envdisk
from tests.guarantees import invariant
from tests.guarantees.harness import (
    URL,
    USER_LINES,
    Run,
    base_env,
    command_args,
    command_line,
    run_cli,
    seed_provisioned,
    wait_for,
)
from tests.guarantees.test_env_on_disk import _with_inject
from tests.tool.conftest import REPO

SIGNALS = [pytest.param(signal.SIGINT, 130, id="SIGINT"), pytest.param(signal.SIGTERM, 143, id="SIGTERM"),
           pytest.param(signal.SIGHUP, 129, id="SIGHUP")]
SAID = {signal.SIGINT: "Interrupted (Ctrl-C)", signal.SIGTERM: "Stopped by SIGTERM", signal.SIGHUP: "Stopped by SIGHUP"}


def _signal_at(env: dict[str, str], args: list[str], step: str, sig: int, control: Path) -> Run:
    """Run the CLI; at checkpoint ``step`` it waits, the test sends ``sig``, then lets it go on."""
    control.mkdir(exist_ok=True)
    paused, resume = control / "paused", control / "resume"
    env = _with_inject(env, CYPHT_AZURE_TEST_ACT_AT=step, CYPHT_AZURE_TEST_PAUSE_FILE=str(paused),
                       CYPHT_AZURE_TEST_RESUME_FILE=str(resume))
    proc = subprocess.Popen(command_line(*args), env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    try:
        if not wait_for(paused, 60, proc):
            out, err = proc.communicate(timeout=5)
            raise AssertionError(f"{args[0]} never reached {step} (exit {proc.returncode})\n{out}\n{err}")
        proc.send_signal(sig)
        time.sleep(0.1)
        resume.write_text("go")
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return Run(tuple(args), proc.returncode, out, err, 0.0)


def _keys(emulator: Any, client_id: str) -> set[str]:
    app = emulator.directory.get_application(app_id=client_id)
    return {str(c["keyId"]).lower() for c in (app or {}).get("passwordCredentials") or []}


@pytest.mark.parametrize(("sig", "code"), SIGNALS)
def test_signal_before_the_commit_point_undoes(emulator: Any, tmp_path: Path, sig: int, code: int) -> None:
    env_file = tmp_path / "cypht" / ".env"
    seeded = seed_provisioned(emulator, env_file)
    env = base_env(emulator, tmp_path / "home")
    before = invariant.snapshot(env_file)
    run = _signal_at(env, command_args("rotate-secret", env_file), "secret-added", sig, tmp_path / "control")
    assert run.returncode == code, run
    assert SAID[sig] in run.stderr and "Undone: Add a client secret" in run.stderr, run
    assert ".env was not changed" in run.stderr, run
    assert env_file.read_bytes() == before.data
    assert _keys(emulator, seeded["client_id"]) == {seeded["key_id"]}, "the new secret is taken back at once"
    invariant.check(emulator, before, run, command="rotate-secret", after_success=True)


@pytest.mark.parametrize(("sig", "code"), SIGNALS)
def test_signal_after_the_commit_point_keeps_the_secret(emulator: Any, tmp_path: Path, sig: int, code: int) -> None:
    env_file = tmp_path / "cypht" / ".env"
    seeded = seed_provisioned(emulator, env_file)
    env = base_env(emulator, tmp_path / "home")
    before = invariant.snapshot(env_file)
    run = _signal_at(env, command_args("rotate-secret", env_file), "env-written", sig, tmp_path / "control")
    assert run.returncode == code, run
    assert SAID[sig] in run.stderr, run
    assert "Undone" not in run.stderr, run
    assert "Not done (running the command again finishes it): Remove the client secret" in run.stderr, run
    invariant.check(emulator, before, run, command="rotate-secret", after_success=False, require_changed=True)
    new_key = str(envdisk.load(env_file).get("OUTLOOK_CLIENT_SECRET_ID"))
    assert _keys(emulator, seeded["client_id"]) == {seeded["key_id"], new_key}, "the old secret is kept for now"

    mid = invariant.snapshot(env_file, known_secrets=before.secrets)
    again = run_cli(env, *command_args("rotate-secret", env_file, "--if-expiring-within", "1d"))
    assert again.returncode == 0, again
    invariant.check(emulator, mid, again, command="rotate-secret", after_success=True)
    assert _keys(emulator, seeded["client_id"]) == {new_key}


def test_sigterm_during_a_deploy_hook_starts_no_further_hook(emulator: Any, tmp_path: Path) -> None:
    """`.env` holds the new secret; the first hook runs when SIGTERM comes: it is let finish, the second
    is never started, the old secret is kept, and the next run runs the hooks again."""
    env_file = tmp_path / "cypht" / ".env"
    seeded = seed_provisioned(emulator, env_file)
    env = base_env(emulator, tmp_path / "home")
    first, second = tmp_path / "first-started", tmp_path / "second-started"
    hooks = ["--deploy-hook", f"touch {first}; sleep 1", "--deploy-hook", f"touch {second}"]
    before = invariant.snapshot(env_file)
    proc = subprocess.Popen(command_line(*command_args("rotate-secret", env_file, *hooks)), env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        assert wait_for(first, 60, proc), proc.communicate(timeout=5)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    run = Run(("rotate-secret",), proc.returncode, out, err, 0.0)
    assert run.returncode == 143, run
    assert not second.exists(), "no hook is started after the signal"
    assert "Stopped by SIGTERM" in run.stderr and "Undone" not in run.stderr, run
    invariant.check(emulator, before, run, command="rotate-secret", after_success=False, require_changed=True)
    doc = envdisk.load(env_file)
    assert doc.get("CYPHT_AZURE_DEPLOY_PENDING") == doc.get("OUTLOOK_CLIENT_SECRET_ID")
    assert seeded["key_id"] in _keys(emulator, seeded["client_id"]), "the old secret is kept until the hooks succeed"

    again = run_cli(env, *command_args("rotate-secret", env_file, *hooks))
    assert again.returncode == 0, again
    assert second.exists()
    assert seeded["key_id"] not in _keys(emulator, seeded["client_id"])


@pytest.mark.parametrize(("sig", "code"), [pytest.param(signal.SIGINT, 130, id="SIGINT"),
                                           pytest.param(signal.SIGTERM, 143, id="SIGTERM")])
def test_signal_during_start_up_prints_one_line(emulator: Any, tmp_path: Path, sig: int, code: int) -> None:
    """At 16 moments in the first ~0.5 s after the entry point's first line (typer, azure-identity and
    msgraph-sdk being imported, the lock taken, the sign-in): one `error:` line, the signal's exit code,
    never a traceback. The moments are counted from the checkpoint `started` (cypht_azure/start.py), so a
    slow interpreter start on a busy machine does not move them."""
    env_file = tmp_path / "cypht" / ".env"
    seed_provisioned(emulator, env_file)
    env = _with_inject(base_env(emulator, tmp_path / "home"), CYPHT_AZURE_TEST_ACT_AT="started")
    before = invariant.snapshot(env_file)
    stopped = 0
    for i, delay in enumerate(0.03 * n for n in range(16)):
        paused, resume = tmp_path / f"paused-{i}", tmp_path / f"resume-{i}"
        proc = subprocess.Popen(command_line(*command_args("rotate-secret", env_file)), cwd=REPO,
                                env={**env, "CYPHT_AZURE_TEST_PAUSE_FILE": str(paused),
                                     "CYPHT_AZURE_TEST_RESUME_FILE": str(resume)},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        assert wait_for(paused, 60, proc), proc.communicate(timeout=5)
        resume.write_text("go")
        time.sleep(delay)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        run = Run(("rotate-secret",), proc.returncode, out, err, delay)
        if proc.returncode == 0:
            continue  # finished before the signal (a fast machine): nothing to see at this moment
        assert "Traceback" not in err, f"after {delay:.2f} s: {run}"
        assert proc.returncode == code, f"after {delay:.2f} s: {run}"
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), f"after {delay:.2f} s: {run}"
        # stopped: an old secret whose removal was cut short is left for the next run (not "after success")
        invariant.check(emulator, before, run, command="rotate-secret")
        before = invariant.snapshot(env_file)
        stopped += 1
    assert stopped >= 8, "most of these moments are before the run is over"


def test_interrupted_add_password_says_what_it_may_have_made(emulator: Any, tmp_path: Path) -> None:
    """Ctrl-C while addPassword is held in flight by the emulator (which then makes the secret): the
    message must not say "Nothing was changed", but that a secret may exist and the next run removes it."""
    env_file = tmp_path / "cypht" / ".env"
    seeded = seed_provisioned(emulator, env_file)
    env = base_env(emulator, tmp_path / "home")
    before = invariant.snapshot(env_file)
    held = emulator.faults.latency(2.0, method="POST", path=r"/addPassword$", kind="graph", times=1)
    proc = subprocess.Popen(command_line(*command_args("rotate-secret", env_file)), env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 60
    while held.fired == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    run = Run(("rotate-secret",), proc.returncode, out, err, 0.0)
    assert run.returncode == 130, run
    assert "Nothing was changed" not in err, run
    assert "A request was in flight" in err and "may have created a client secret" in err, run
    assert "the next run removes it" in err and ".env was not changed" in err, run
    assert env_file.read_bytes() == before.data
    time.sleep(2.5)  # the emulator acts once the delay is over: the secret now exists, as the message said
    assert len(_keys(emulator, seeded["client_id"])) == 2
    invariant.check(emulator, before, run, command="rotate-secret", after_success=False)

    again = run_cli(env, *command_args("rotate-secret", env_file, "--if-expiring-within", "1d"))
    assert again.returncode == 0, again
    assert _keys(emulator, seeded["client_id"]) == {seeded["key_id"]}, "the next run removed it"


def test_interrupted_registration_create_says_what_it_may_have_made(emulator: Any, tmp_path: Path) -> None:
    env_file = tmp_path / "cypht" / ".env"
    env_file.parent.mkdir()
    env_file.write_text(USER_LINES)
    env = base_env(emulator, tmp_path / "home")
    before = invariant.snapshot(env_file)
    held = emulator.faults.latency(2.0, method="POST", path=r"/applications$", kind="graph", times=1)
    proc = subprocess.Popen(command_line(*command_args("provision", env_file)), env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 60
    while held.fired == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    run = Run(("provision",), proc.returncode, out, err, 0.0)
    assert run.returncode == 143, run
    assert "Nothing was changed" not in err, run
    assert "may have been created" in err and "finds it by that uniqueName" in err, run
    time.sleep(2.5)
    apps = [a for a in emulator.directory.applications() if "cypht-azure" in (a.get("tags") or [])]
    assert len(apps) == 1, "the request in flight did create it"
    invariant.check(emulator, before, run, command="provision", after_success=False)

    again = run_cli(env, *command_args("provision", env_file))
    assert again.returncode == 0, again
    apps = [a for a in emulator.directory.applications() if "cypht-azure" in (a.get("tags") or [])]
    assert len(apps) == 1 and apps[0]["uniqueName"], "the next run found it and made no second one"
    assert URL.split("//")[1] in str(apps[0].get("web"))
