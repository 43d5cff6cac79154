"""No secret is ever shown: every command x output mode, successes and failures, scanned for every
client secret the emulator ever handed out, the administrator's secret, and anything JWT-shaped.

Places searched: stdout, stderr, every file the run left under HOME, XDG_STATE_HOME and TMPDIR (the
audit log among them), the folder of `.env` (besides `.env` itself), the webhook events a loopback
receiver got, and the argv of the process and its children while it runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.guarantees import invariant
from tests.guarantees.harness import (
    URL,
    USER_LINES,
    base_env,
    command_line,
    run_cli,
    seed_provisioned,
    wait_for,
)
from tests.tool.webhooks import WebhookReceiver

MODES: dict[str, tuple[list[str], dict[str, str]]] = {
    "human": ([], {}),
    "json": (["--json"], {}),
    "verbose": (["--verbose"], {}),
    "debug": (["--verbose", "--json"], {"CYPHT_AZURE_DEBUG": "1"}),
}


def record_secrets(emulator: Any) -> set[str]:
    """Every secretText the emulator hands out from now on (test-side wrapper on this instance)."""
    seen: set[str] = set()
    directory = emulator.directory
    original = directory._add_password

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        answer = original(*args, **kwargs)
        if isinstance(answer, dict) and answer.get("secretText"):
            seen.add(str(answer["secretText"]))
        return answer

    directory._add_password = wrapped
    return seen


def _setup(name: str, emulator: Any, env_file: Path) -> tuple[list[str], dict[str, str], Callable[[], None] | None]:
    """(args, extra env, fault installer) for one scenario."""
    args_env = ["--env-file", str(env_file)]
    if name.startswith("provision"):
        env_file.parent.mkdir(parents=True, exist_ok=True)
        env_file.write_text(USER_LINES)
    else:
        seeded = seed_provisioned(emulator, env_file)
    if name == "provision":
        return ["provision", "--url", URL, *args_env], {}, None
    if name == "provision-dry-run":
        return ["provision", "--url", URL, "--dry-run", *args_env], {}, None
    if name == "provision-unverified":  # fails: the new secret is stored but never accepted
        return (["provision", "--url", URL, *args_env], {"CYPHT_AZURE_VERIFY_TIMEOUT": "2"},
                lambda: emulator.faults.secret_activation_delay(ms=600_000))
    if name == "provision-again":
        return ["provision", "--url", URL, *args_env], {}, None
    if name == "rotate-secret":
        return ["rotate-secret", *args_env], {}, None
    if name == "rotate-secret-hook-fails":  # exit 8: the hook prints the file it reads; the old secret stays
        return (["rotate-secret", "--deploy-hook", 'cat "$CYPHT_AZURE_ENV_FILE"; exit 3', *args_env], {}, None)
    if name == "rotate-secret-dry-run":
        return ["rotate-secret", "--dry-run", *args_env], {}, None
    if name == "rotate-secret-graph-fails":
        return (["rotate-secret", *args_env], {},
                lambda: emulator.faults.add("POST", r"/removePassword$", 500, times=None))
    if name == "rotate-secret-wrong-admin-secret":
        return ["rotate-secret", *args_env], {"AZURE_CLIENT_SECRET": "abc8Q~WrongAdminSecretThatIsSecret00000"}, None
    if name == "status-verify-secret":
        return ["status", "--verify-secret", *args_env], {}, None
    if name == "status-all":
        return ["status", "--all"], {}, None
    if name == "deprovision-dry-run":
        return ["deprovision", "--dry-run", *args_env], {}, None
    if name == "deprovision":
        return ["deprovision", "--yes", *args_env], {}, None
    if name == "restore":
        from cypht_azure.emulator.models import SYSTEM

        emulator.directory.app_delete(SYSTEM, ("id", seeded["object_id"]))
        return ["restore", "--app-id", seeded["client_id"]], {}, None
    raise ValueError(name)


SCENARIOS = ["provision", "provision-dry-run", "provision-again", "provision-unverified", "rotate-secret",
             "rotate-secret-hook-fails", "rotate-secret-dry-run", "rotate-secret-graph-fails", "rotate-secret-wrong-admin-secret",
             "status-verify-secret", "status-all", "deprovision-dry-run", "deprovision", "restore"]


def _files_text(*folders: Path, skip: Path | None = None) -> dict[str, str]:
    found = {}
    for folder in folders:
        if not folder.exists():
            continue
        for root, _dirs, files in os.walk(folder):
            for name in files:
                path = Path(root) / name
                if skip is not None and path == skip:
                    continue
                found[str(path)] = path.read_bytes().decode("utf-8", "replace")
    return found


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_nothing_secret_is_shown(emulator: Any, tmp_path: Path, scenario: str, mode: str) -> None:
    created = record_secrets(emulator)
    env_file = tmp_path / "cypht" / ".env"
    if scenario == "provision-again":
        emulator_env = base_env(emulator, tmp_path / "home")
        env_file.parent.mkdir(parents=True)
        env_file.write_text(USER_LINES)
        assert run_cli(emulator_env, "provision", "--url", URL, "--env-file", str(env_file)).returncode == 0
        args, extra, fault = ["provision", "--url", URL, "--env-file", str(env_file)], {}, None
    else:
        args, extra, fault = _setup(scenario, emulator, env_file)
    before = invariant.snapshot(env_file)
    if fault is not None:
        fault()
    flags, mode_env = MODES[mode]
    env = base_env(emulator, tmp_path / "home", **extra, **mode_env)
    receiver = WebhookReceiver()
    try:
        notify = ["--notify", receiver.url] if args[0] in ("provision", "rotate-secret") else []
        run = run_cli(env, *args, *notify, *flags)
    finally:
        receiver.stop()
    expected_failure = scenario in ("provision-unverified", "rotate-secret-graph-fails",
                                    "rotate-secret-wrong-admin-secret", "rotate-secret-hook-fails")
    assert (run.returncode != 0) == expected_failure, run

    secrets = created | before.secrets | {emulator.info["admin_client_secret"], extra.get("AZURE_CLIENT_SECRET", "")}
    if env_file.is_file():
        secrets |= invariant._secrets_in(env_file.read_bytes())
    secrets.discard("")
    assert secrets, "the scan must know at least one secret"
    hits = invariant.leaks(run.stdout, secrets, where="stdout") + invariant.leaks(run.stderr, secrets, where="stderr")
    files = _files_text(tmp_path / "home", env_file.parent, skip=env_file)
    audit_log = tmp_path / "home" / ".state" / "cypht-azure" / "audit.log"
    if scenario in ("provision", "provision-unverified", "rotate-secret", "rotate-secret-hook-fails",
                    "rotate-secret-graph-fails", "rotate-secret-wrong-admin-secret"):
        assert str(audit_log) in files, f"the run wrote no audit line\n{run}"
    if scenario in ("rotate-secret", "rotate-secret-hook-fails", "rotate-secret-graph-fails"):
        assert receiver.bodies, f"no webhook event\n{run}"
    for path, text in files.items():
        hits += invariant.leaks(text, secrets, where=path)
    hits += invariant.leaks("\n".join(receiver.raw), secrets, where="webhook events")
    assert not hits, "\n".join(hits) + f"\n{run}"
    if mode == "debug":
        assert "cypht_azure" in run.stderr or "azure" in run.stderr, "debug logging was not on"
    if scenario != "status-all" and not scenario.startswith(("status", "restore")):
        command = args[0]
        emulator.faults.clear()
        invariant.check(emulator, before, run, command=command, extra_secrets=secrets, php=False,
                        after_success=False, debug=mode == "debug")


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry))
    return kids


@pytest.mark.parametrize(("command", "step"), [("provision", "secret-added"), ("provision", "env-written"),
                                               ("rotate-secret", "secret-verified"),
                                               ("rotate-secret", "env-written")])
def test_secret_never_in_argv(emulator: Any, tmp_path: Path, command: str, step: str) -> None:
    created = record_secrets(emulator)
    env_file = tmp_path / "cypht" / ".env"
    if command == "provision":
        env_file.parent.mkdir()
        env_file.write_text(USER_LINES)
        args = ["provision", "--url", URL, "--env-file", str(env_file)]
    else:
        seed_provisioned(emulator, env_file)
        args = ["rotate-secret", "--env-file", str(env_file)]
    pause = tmp_path / "paused"
    env = base_env(emulator, tmp_path / "home", CYPHT_AZURE_TEST_PAUSE_AT=step, CYPHT_AZURE_TEST_PAUSE_FILE=str(pause))
    proc = subprocess.Popen(command_line(*args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    try:
        assert wait_for(pause, 60, proc), f"never reached {step}"
        argv = {pid: Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace")
                for pid in [proc.pid, *_children(proc.pid)]}
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    secrets = created | {emulator.info["admin_client_secret"]}
    assert len(created) >= 1, "the run was paused after a secret was created"
    hits = [h for pid, text in argv.items() for h in invariant.leaks(text, secrets, where=f"argv of {pid}")]
    assert not hits, hits
