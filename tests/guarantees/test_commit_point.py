"""The commit point is absolute (issue 17, item 1): once `.env` holds the new secret, nothing undoes it.

The commit is recorded inside the `.env` write, the instant the rename returned (or the in-place write of
a bind-mounted file was read back), before the folder is synced. An fsync error after that instant (EIO
from a failing disk, an NFS server gone) is injected into the CLI process (tests/guarantees/inject): the
run must keep the new secret, keep the old one too (a crash could bring back the old file), say so in a
warning, exit 1, and the next run must remove the old secret. Before, the run printed "FAILED: Write …
[commit point]", removed the secret `.env` now held, and Cypht was left with a dead secret.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from cypht_azure import envdisk
from tests.guarantees import invariant
from tests.guarantees.harness import USER_LINES, base_env, command_args, run_cli, seed_provisioned
from tests.guarantees.test_disk import INJECT, _needs_root
from tests.guarantees.test_env_on_disk import bind_mounted

__all__ = ["bind_mounted"]  # the fixture


def _inject(env: dict[str, str], **extra: str) -> dict[str, str]:
    return {**env, "PYTHONPATH": f"{INJECT}{os.pathsep}{env['PYTHONPATH']}", **extra}


def _app(emulator: Any, client_id: str) -> dict[str, Any]:
    app = emulator.directory.get_application(app_id=client_id)
    assert app is not None
    return dict(app)


def _key_ids(emulator: Any, client_id: str) -> set[str]:
    return {str(c["keyId"]).lower() for c in _app(emulator, client_id).get("passwordCredentials") or []}


def _check_kept_and_warned(emulator: Any, before: invariant.Snapshot, run: Any, command: str) -> None:
    assert run.returncode == 1, run
    assert "warning:" in run.stderr and "could not be flushed to disk" in run.stderr, run
    assert "Input/output error" in run.stderr, run
    assert "undone" not in (run.stdout + run.stderr).lower(), run
    assert "previous secret is kept" in run.stderr, run
    invariant.check(emulator, before, run, command=command, after_success=False, require_changed=True)


@pytest.mark.parametrize("command", ["provision", "rotate-secret"])
def test_folder_fsync_error_after_the_rename_undoes_nothing(emulator: Any, tmp_path: Path, command: str) -> None:
    env_file = tmp_path / "cypht" / ".env"
    old_key = None
    if command == "provision":
        env_file.parent.mkdir()
        env_file.write_text(USER_LINES)
    else:
        seeded = seed_provisioned(emulator, env_file)
        old_key = seeded["key_id"]
    env = base_env(emulator, tmp_path / "home")
    before = invariant.snapshot(env_file)
    faulty = _inject(env, CYPHT_AZURE_TEST_FAIL_WRITE="EIO-on-folder-fsync",
                     CYPHT_AZURE_TEST_FAIL_PATH=str(env_file.parent.resolve()))
    run = run_cli(faulty, *command_args(command, env_file))
    _check_kept_and_warned(emulator, before, run, command)
    doc = envdisk.load(env_file)
    client_id = str(doc.get("OUTLOOK_CLIENT_ID"))
    if old_key is not None:
        assert old_key in _key_ids(emulator, client_id), "the old secret must be kept: the rename may not be on disk"
        assert str(doc.get("OUTLOOK_CLIENT_SECRET_ID")) != old_key

    # The next run (disk healthy again) cleans up: the old secret is removed, only the one .env holds stays.
    mid = invariant.snapshot(env_file, known_secrets=before.secrets)
    again = run_cli(env, *command_args(command, env_file, *(["--if-expiring-within", "1d"]
                                                           if command == "rotate-secret" else [])))
    assert again.returncode == 0, again
    invariant.check(emulator, mid, again, command=command, after_success=True)
    assert _key_ids(emulator, client_id) == {str(envdisk.load(env_file).get("OUTLOOK_CLIENT_SECRET_ID")).lower()}


def test_fsync_warning_is_in_the_json_document(emulator: Any, tmp_path: Path) -> None:
    env_file = tmp_path / "cypht" / ".env"
    seed_provisioned(emulator, env_file)
    env = base_env(emulator, tmp_path / "home")
    before = invariant.snapshot(env_file)
    run = run_cli(_inject(env, CYPHT_AZURE_TEST_FAIL_WRITE="EIO-on-folder-fsync",
                          CYPHT_AZURE_TEST_FAIL_PATH=str(env_file.parent.resolve())),
                  *command_args("rotate-secret", env_file, "--json"))
    assert run.returncode == 1, run
    document = run.json
    assert document["new_key_id"] and document["warnings"], document
    assert "could not be flushed to disk" in document["warnings"][0]
    assert document["removed_key_ids"] == [], "no old secret is removed while the write is not on disk"
    removal = [s for s in document["steps"] if s["step"] == "RemoveSecret"]
    assert removal and all(s["status"] == "not run" for s in removal), removal
    invariant.check(emulator, before, run, command="rotate-secret", after_success=False, require_changed=True)


def test_bind_mounted_folder_fsync_error_after_the_write_undoes_nothing(
    emulator: Any, tmp_path: Path, bind_mounted: tuple[Path, Path],
) -> None:
    """In place: the backup is saved and the folder synced (that sync goes through), the new text is
    written, synced and read back (the commit point), then syncing the folder fails."""
    _needs_root()
    host, env_file = bind_mounted
    env = base_env(emulator, tmp_path / "home")
    assert run_cli(env, *command_args("provision", env_file)).returncode == 0
    old_key = str(envdisk.load(env_file).get("OUTLOOK_CLIENT_SECRET_ID"))
    before = invariant.snapshot(env_file)
    run = run_cli(_inject(env, CYPHT_AZURE_TEST_FAIL_WRITE="EIO-on-folder-fsync", CYPHT_AZURE_TEST_FAIL_AFTER="1",
                          CYPHT_AZURE_TEST_FAIL_PATH=str(env_file.parent.resolve())),
                  *command_args("rotate-secret", env_file))
    _check_kept_and_warned(emulator, before, run, "rotate-secret")
    client_id = str(envdisk.load(env_file).get("OUTLOOK_CLIENT_ID"))
    assert old_key in _key_ids(emulator, client_id)
    assert host.read_bytes() == env_file.read_bytes()

    mid = invariant.snapshot(env_file, known_secrets=before.secrets)
    again = run_cli(env, *command_args("rotate-secret", env_file, "--if-expiring-within", "1d"))
    assert again.returncode == 0, again
    invariant.check(emulator, mid, again, command="rotate-secret", after_success=True)
