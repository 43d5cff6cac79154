"""Pre-checks before any secret exists (issue 17, item 5).

A `.env` (or its folder) that even root cannot change, a read-only file system, or a file system that
refuses the temporary file the commit needs must be refused with exit 2 before anything exists in
Graph: the emulator's request log stays empty, `.env` is byte-identical and nothing is left beside it.
Before, an immutable `.env` passed the checks: the secret was created, the rename failed with EPERM and
the secret was taken back (exit 1).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.guarantees import invariant
from tests.guarantees.harness import USER_LINES, base_env, command_args, run_cli, seed_provisioned
from tests.guarantees.test_disk import INJECT, _needs_root

COMMANDS = ["provision", "rotate-secret"]


def _seed(emulator: Any, env_file: Path, command: str) -> None:
    if command == "provision":
        env_file.parent.mkdir(parents=True)
        env_file.write_text(USER_LINES)
    else:
        seed_provisioned(emulator, env_file)


def _refused(emulator: Any, env: dict[str, str], env_file: Path, command: str, cause: tuple[str, ...]) -> None:
    before = invariant.snapshot(env_file)
    emulator.clear_log()
    run = run_cli(env, *command_args(command, env_file))
    problems = invariant.cli_failure_is_clean(run, codes={2}, cause=cause)
    assert not problems, "\n".join(problems) + f"\n{run}"
    assert emulator.request_log == [], "refused before signing in: not one request"
    assert env_file.read_bytes() == before.data
    assert set(os.listdir(env_file.parent)) == before.listing, "nothing is left beside .env"
    invariant.check(emulator, before, run, command=command, php=False)


@pytest.fixture
def chattr() -> Iterator[Any]:
    """chattr on a path; every flag set is cleared again afterwards, so the test's folder can be removed."""
    _needs_root()
    if shutil.which("chattr") is None:
        pytest.fail("chattr (e2fsprogs) is needed")
    changed: list[Path] = []

    def set_flag(path: Path, flag: str) -> None:
        done = subprocess.run(["chattr", f"+{flag}", str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"this file system does not take chattr +{flag}: {done.stderr.strip()}")
        changed.append(path)

    yield set_flag
    for path in changed:
        subprocess.run(["chattr", "-i", "-a", str(path)], check=False)


@pytest.mark.parametrize(("flag", "cause"), [("i", "immutable (chattr +i)"), ("a", "append-only (chattr +a)")])
@pytest.mark.parametrize("where", ["file", "folder"])
@pytest.mark.parametrize("command", COMMANDS)
def test_chattr_flags_are_refused_before_any_request(
    emulator: Any, tmp_path: Path, chattr: Any, command: str, where: str, flag: str, cause: str,
) -> None:
    env_file = tmp_path / "cypht" / ".env"
    _seed(emulator, env_file, command)
    chattr(env_file if where == "file" else env_file.parent, flag)
    _refused(emulator, base_env(emulator, tmp_path / "home"), env_file, command,
             (cause, f"chattr -{flag}"))


@pytest.fixture
def read_only_bind(tmp_path: Path) -> Iterator[Any]:
    """`mount --bind X X; mount -o remount,bind,ro X`: X read-only (EROFS) on a file system that is not."""
    _needs_root()
    mounted: list[Path] = []

    def make_read_only(path: Path) -> None:
        for args in (["mount", "--bind", str(path), str(path)], ["mount", "-o", "remount,bind,ro", str(path)]):
            done = subprocess.run(args, capture_output=True, text=True)
            assert done.returncode == 0, f"{' '.join(args)}: {done.stderr} (CI runs as root)"
            if args[1] == "--bind":
                mounted.append(path)

    yield make_read_only
    for path in reversed(mounted):
        subprocess.run(["umount", str(path)], check=False)


@pytest.mark.parametrize("what", ["folder", "bind-mounted-file"])
@pytest.mark.parametrize("command", COMMANDS)
def test_read_only_file_system_is_refused_before_any_request(
    emulator: Any, tmp_path: Path, read_only_bind: Any, command: str, what: str,
) -> None:
    env_file = tmp_path / "cypht" / ".env"
    _seed(emulator, env_file, command)
    read_only_bind(env_file.parent if what == "folder" else env_file)
    _refused(emulator, base_env(emulator, tmp_path / "home"), env_file, command,
             ("on a read-only file system (mounted ro, EROFS)",))


@pytest.mark.parametrize("command", COMMANDS)
def test_file_system_that_refuses_the_temporary_file_is_refused_before_any_request(
    emulator: Any, tmp_path: Path, command: str,
) -> None:
    """O_TMPFILE works but the file cannot be given a name (linkat of /proc/self/fd fails), as on file
    systems that offer one and not the other: the probe makes the temporary file the commit would make."""
    env_file = tmp_path / "cypht" / ".env"
    _seed(emulator, env_file, command)
    env = base_env(emulator, tmp_path / "home")
    env = {**env, "PYTHONPATH": f"{INJECT}{os.pathsep}{env['PYTHONPATH']}",
           "CYPHT_AZURE_TEST_FAIL_WRITE": "EOPNOTSUPP-on-link"}
    _refused(emulator, env, env_file, command, ("temporary file",))
