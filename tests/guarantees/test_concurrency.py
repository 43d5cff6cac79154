"""Several runs at once on the same `.env` and app: they take turns (the folder lock), and the end state
is what the same runs one after another would leave."""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cypht_azure import envdisk
from cypht_azure.errors import OperationFailed
from cypht_azure.operations.core.runner import env_read
from tests.guarantees import invariant
from tests.guarantees.harness import USER_LINES, Run, base_env, command_args, command_line, seed_provisioned

ROTATIONS = 4


def _all_at_once(env: dict[str, str], argv: list[list[str]]) -> list[Run]:
    procs = [subprocess.Popen(command_line(*a), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True) for a in argv]
    runs = []
    for a, p in zip(argv, procs, strict=True):
        out, err = p.communicate(timeout=180)
        runs.append(Run(tuple(a), p.returncode, out, err, 0.0))
    return runs


def _graph_writes(emulator: Any) -> list[str]:
    return [e.path.rsplit("/", 1)[-1] for e in emulator.request_log
            if e.kind == "graph" and e.method != "GET" and 200 <= e.status < 300]


def test_concurrent_rotations_serialise(emulator: Any, tmp_path: Path) -> None:
    env_file = tmp_path / "cypht" / ".env"
    seeded = seed_provisioned(emulator, env_file)
    env = base_env(emulator, tmp_path / "home")
    before = invariant.snapshot(env_file)
    emulator.clear_log()

    runs = _all_at_once(env, [command_args("rotate-secret", env_file, "--json")] * ROTATIONS)

    for run in runs:
        assert run.returncode == 0, run
    new_ids = [run.json["new_key_id"] for run in runs]
    assert len(set(new_ids)) == ROTATIONS, "every run rotated once"
    # Each run replaced exactly the secret the previous one wrote: the runs took turns.
    chain = {run.json["previous_key_id"]: run.json["new_key_id"] for run in runs}
    key, seen = seeded["key_id"], 0
    while key in chain:
        key, seen = chain[key], seen + 1
    assert seen == ROTATIONS, f"rotations did not form one chain: {chain}"
    # ... and their Graph writes did not interleave: add, remove, add, remove, ...
    assert _graph_writes(emulator) == ["addPassword", "removePassword"] * ROTATIONS
    doc = envdisk.load(env_file)
    assert doc.get("OUTLOOK_CLIENT_SECRET_ID") == key
    app = emulator.directory.get_application(app_id=seeded["client_id"])
    assert [c["keyId"].lower() for c in app["passwordCredentials"]] == [key], "the app ends with one secret"
    for run in runs:
        invariant.check(emulator, before, run, command="rotate-secret", after_success=True, php=False)
    invariant.check(emulator, before, runs[-1], command="rotate-secret", after_success=True)


def test_concurrent_first_provisions_make_one_app_and_one_secret(emulator: Any, tmp_path: Path) -> None:
    env_file = tmp_path / "cypht" / ".env"
    env_file.parent.mkdir()
    env_file.write_text(USER_LINES)
    env = base_env(emulator, tmp_path / "home")
    before = invariant.snapshot(env_file)

    runs = _all_at_once(env, [command_args("provision", env_file, "--json")] * 3)

    for run in runs:
        assert run.returncode == 0, run
    assert sum(run.json["created"] for run in runs) == 1
    assert sum(run.json["secret_created"] for run in runs) == 1, "later runs keep the secret the first wrote"
    apps = [a for a in emulator.directory.applications() if "cypht-azure" in (a.get("tags") or [])]
    assert len(apps) == 1 and len(apps[0]["passwordCredentials"]) == 1
    for run in runs:
        invariant.check(emulator, before, run, command="provision", after_success=True, php=False)
    invariant.check(emulator, before, runs[0], command="provision", after_success=True, require_changed=True)


def test_rotation_waits_for_a_provision_holding_the_lock(emulator: Any, tmp_path: Path) -> None:
    """A rotate-secret and a provision started together on the same .env: both succeed, one secret left."""
    env_file = tmp_path / "cypht" / ".env"
    seeded = seed_provisioned(emulator, env_file)
    env = base_env(emulator, tmp_path / "home")
    before = invariant.snapshot(env_file)
    runs = _all_at_once(env, [command_args("rotate-secret", env_file, "--json"),
                              command_args("provision", env_file, "--json"),
                              command_args("rotate-secret", env_file, "--json")])
    for run in runs:
        assert run.returncode == 0, run
    app = emulator.directory.get_application(app_id=seeded["client_id"])
    assert len(app["passwordCredentials"]) == 1
    invariant.check(emulator, before, runs[-1], command="rotate-secret", after_success=True, require_changed=True)


def test_a_lock_held_too_long_is_another_run_not_bad_input(tmp_path: Path) -> None:
    """The lock wait running out is told apart by its type (envdisk.LockTimeout), not by its wording:
    exit 1 (OperationFailed) saying nothing was changed, and the file is as it was."""
    env = tmp_path / ".env"
    env.write_text("A=1\n")
    holder = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)  # another run, holding the folder's lock
        with pytest.raises(OperationFailed, match="held its lock for more than 0 s; nothing was changed"), \
                env_read(env, writes=True, wait=0.2):
            pass
        with envdisk.open_target(env) as target, pytest.raises(envdisk.LockTimeout), target.locked(0.1):
            pass
    finally:
        os.close(holder)
    assert env.read_text() == "A=1\n"
