"""A bind-mounted `.env` under I/O errors (issue 17, item 6).

Docker's single-file bind mount cannot be renamed over, so it is rewritten in place with a backup of the
old text beside it. The backup stays until the new text is written, synced and read back; after a failure
`.env` holds either the old text or the new and the message says which; a failed restore never deletes
the backup; the next run puts the backup back before anything else. The errors are injected into the
CLI process (tests/guarantees/inject/sitecustomize.py) on the bind-mounted file only.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from cypht_azure import envdisk
from tests.guarantees import invariant
from tests.guarantees.harness import base_env, command_args, run_cli
from tests.guarantees.test_disk import INJECT
from tests.guarantees.test_env_on_disk import _secret_works, bind_mounted

__all__ = ["bind_mounted"]  # the fixture


def _faulty(env: dict[str, str], env_file: Path, mode: str, **extra: str) -> dict[str, str]:
    return {**env, "PYTHONPATH": f"{INJECT}{os.pathsep}{env['PYTHONPATH']}", "CYPHT_AZURE_TEST_FAIL_WRITE": mode,
            "CYPHT_AZURE_TEST_FAIL_PATH": str(env_file.resolve()), **extra}


def _backup(env_file: Path) -> Path:
    return env_file.with_name(f".{env_file.name}.cypht-azure.backup")


def _provisioned(emulator: Any, tmp_path: Path, env_file: Path) -> dict[str, str]:
    env = base_env(emulator, tmp_path / "home")
    first = run_cli(env, *command_args("provision", env_file))
    assert first.returncode == 0, first
    return env


def test_failed_write_put_back_says_unchanged(emulator: Any, tmp_path: Path, bind_mounted: tuple[Path, Path]) -> None:
    """The new text's fsync fails once; the old text goes back (its own fsync works): `.env` is unchanged,
    the backup is gone, the new secret is taken back, and the message says the file is unchanged."""
    _host, env_file = bind_mounted
    env = _provisioned(emulator, tmp_path, env_file)
    before = invariant.snapshot(env_file)
    run = run_cli(_faulty(env, env_file, "EIO-on-file-fsync", CYPHT_AZURE_TEST_FAIL_TIMES="1"),
                  *command_args("rotate-secret", env_file))
    assert run.returncode == 1, run
    assert "Input/output error" in run.stderr and "previous content was put back, so it is unchanged" in run.stderr, run
    assert env_file.read_bytes() == before.data and not _backup(env_file).exists()
    invariant.check(emulator, before, run, command="rotate-secret", after_success=True)


def test_failed_restore_keeps_the_backup_and_the_next_run_repairs(
    emulator: Any, tmp_path: Path, bind_mounted: tuple[Path, Path],
) -> None:
    """Every fsync of the file fails: the new text cannot be confirmed and the old one cannot be either.
    The backup must stay (before, the failed restore deleted it), the message says what `.env` holds,
    and the next run puts the backup back, then rotates."""
    host, env_file = bind_mounted
    env = _provisioned(emulator, tmp_path, env_file)
    before = invariant.snapshot(env_file)
    run = run_cli(_faulty(env, env_file, "EIO-on-file-fsync"), *command_args("rotate-secret", env_file))
    assert run.returncode == 1, run
    assert "putting its previous content back failed too" in run.stderr, run
    assert "It holds its previous content" in run.stderr and "the next run puts it back first" in run.stderr, run
    assert "Traceback" not in run.stderr and "[Errno" not in run.stderr, run
    backup = _backup(env_file)
    assert backup.read_bytes() == before.data, "the backup must survive a failed restore"
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert env_file.read_bytes() == before.data
    _secret_works(emulator, env_file)  # the old secret was not removed: the plan stopped before the commit

    again = run_cli(env, *command_args("rotate-secret", env_file))
    assert again.returncode == 0, again
    assert not backup.exists() and sorted(os.listdir(env_file.parent)) == [".env"]
    invariant.check(emulator, before, again, command="rotate-secret", after_success=True, require_changed=True)
    assert host.read_bytes() == env_file.read_bytes()


def test_failed_backup_sync_changes_nothing(emulator: Any, tmp_path: Path, bind_mounted: tuple[Path, Path]) -> None:
    """The folder's fsync after the backup was written fails: nothing was written to `.env`, the backup is
    removed again, the message names the OS error (before: a bare `[Errno 5]` and the backup left)."""
    host, env_file = bind_mounted
    env = _provisioned(emulator, tmp_path, env_file)
    before = invariant.snapshot(env_file)
    run = run_cli(_faulty(env, env_file.parent, "EIO-on-folder-fsync"), *command_args("rotate-secret", env_file))
    assert run.returncode == 1, run
    assert "could not back up it" in run.stderr or "could not back it up" in run.stderr, run
    assert "[Errno" not in run.stderr, run
    assert env_file.read_bytes() == before.data and not _backup(env_file).exists()
    invariant.check(emulator, before, run, command="rotate-secret", after_success=True)
    assert envdisk.load(env_file).get("OUTLOOK_CLIENT_SECRET") == envdisk.load(host).get("OUTLOOK_CLIENT_SECRET")
