"""Disk faults: a folder or file that cannot be written, a full disk during the write, a directory or a
dangling symlink where `.env` should be. The file's own dangers (a re-pointed symlink, another
program's edits, a bind mount, ACLs, a kill mid-write) are in test_env_on_disk.py.

Refusals that can be known before signing in (permissions, a directory, a dangling link) must happen
before any request. A write that fails after a secret was created must take that secret back, leave
`.env` byte-identical, leave no temporary file, and exit with a documented code.

Root ignores permissions, so those runs become `nobody` (setpriv, see AS_NOBODY) after the files
they need were made accessible. A full disk is a real 16 KiB tmpfs when this machine lets us
mount one, and otherwise (and always, in a second variant) an ENOSPC/EIO injected into the CLI process
by tests/guarantees/inject/sitecustomize.py — test-only code that touches nothing but the tool's
temporary file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.guarantees import invariant
from tests.guarantees.harness import (
    URL,
    USER_LINES,
    base_env,
    command_args,
    run_cli,
    seed_provisioned,
)
from tests.tool.conftest import REPO

NOBODY = 65534
INJECT = Path(__file__).resolve().parent / "inject"


def writes(emulator: Any) -> list[tuple[str, str]]:
    return [(e.method, e.path) for e in emulator.request_log if e.kind == "graph" and e.method != "GET"]


# Root ignores file permissions. The permission runs therefore run as `nobody` through setpriv,
# keeping only CAP_DAC_READ_SEARCH so that the interpreter under /root stays reachable: reading and
# searching are allowed everywhere, writing is checked exactly as for any unprivileged user.
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
             "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", "--"]


@pytest.fixture
def shared(emulator: Any) -> Iterator[Path]:
    """A folder outside pytest's root-only tree that `nobody` can reach, with a copy of the CA."""
    folder = Path(tempfile.mkdtemp(prefix="cypht-azure-disk-"))
    folder.chmod(0o755)
    shutil.copy(emulator.ca_file, folder / "ca.pem")
    (folder / "ca.pem").chmod(0o644)
    (folder / "home").mkdir(mode=0o777)
    (folder / "home").chmod(0o777)
    try:
        yield folder
    finally:
        for root, dirs, _files in os.walk(folder):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
        shutil.rmtree(folder, ignore_errors=True)


def nobody_env(emulator: Any, shared: Path) -> dict[str, str]:
    # nobody's installation records: a folder of its own, as the records' rule wants (the shared
    # home is writable by all, so records under it would be refused)
    records = shared / "records"
    records.mkdir(mode=0o700, exist_ok=True)
    os.chown(records, NOBODY, NOBODY)
    env = base_env(emulator, shared / "home", CYPHT_AZURE_CA_FILE=str(shared / "ca.pem"),
                   CYPHT_AZURE_RECORD_DIR=str(records))
    for folder in (shared / "home", shared / "home" / "tmp"):
        folder.chmod(0o777)
    return env


def _needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("running as another user needs root; as a normal user tests/tool covers the checks")
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is needed to run the CLI as nobody")


@pytest.mark.parametrize(("layout", "cause"), [
    ("folder-read-only", "not writable"),
    ("file-read-only", "read-only"),
    ("file-of-another-user", "belongs to user id"),
])
@pytest.mark.parametrize("command", ["provision", "rotate-secret", "deprovision"])
def test_unwritable_env_is_refused_before_any_request(
    emulator: Any, shared: Path, layout: str, cause: str, command: str,
) -> None:
    _needs_root()
    folder = shared / "cypht"
    env_file = folder / ".env"
    if command == "provision":
        folder.mkdir()
        env_file.write_text(USER_LINES)
    else:
        seed_provisioned(emulator, env_file)
    if layout == "folder-read-only":
        os.chown(env_file, NOBODY, NOBODY)
        env_file.chmod(0o600)
        folder.chmod(0o555)  # root's folder: nobody may not create the temporary file
    elif layout == "file-read-only":
        os.chown(folder, NOBODY, NOBODY)
        os.chown(env_file, NOBODY, NOBODY)
        env_file.chmod(0o400)
    else:
        os.chown(folder, NOBODY, NOBODY)
        env_file.chmod(0o666)  # writable, but root's: replacing it would change its owner
    before = invariant.snapshot(env_file)
    emulator.clear_log()
    run = run_cli(nobody_env(emulator, shared), *command_args(command, env_file), prefix=AS_NOBODY)
    problems = invariant.cli_failure_is_clean(run, codes={2}, cause=(cause,))
    assert not problems, "\n".join(problems) + f"\n{run}"
    assert emulator.request_log == [], "a local problem must be found before signing in"
    invariant.check(emulator, before, run, command=command, php=False)
    assert env_file.read_bytes() == before.data


@pytest.mark.parametrize("command", ["provision", "rotate-secret", "deprovision"])
@pytest.mark.parametrize("shape", ["directory", "dangling-symlink"])
def test_env_that_is_not_a_file_is_refused_before_any_request(
    emulator: Any, tmp_path: Path, command: str, shape: str,
) -> None:
    folder = tmp_path / "cypht"
    folder.mkdir()
    env_file = folder / ".env"
    if shape == "directory":
        env_file.mkdir()
        (env_file / "keep").write_text("x")
        cause = "is a directory"
    else:
        env_file.symlink_to(folder / "missing.env")
        cause = "does not exist"
    listing = sorted(os.listdir(folder))
    emulator.clear_log()
    run = run_cli(base_env(emulator, tmp_path / "home"), *command_args(command, env_file))
    problems = invariant.cli_failure_is_clean(run, codes={2}, cause=(cause,))
    assert not problems, "\n".join(problems) + f"\n{run}"
    assert emulator.request_log == []
    assert sorted(os.listdir(folder)) == listing
    assert env_file.is_dir() if shape == "directory" else (env_file.is_symlink() and not env_file.exists())


# --------------------------------------------------------------------------- the write itself fails

def _inject_env(env: dict[str, str], failure: str) -> dict[str, str]:
    return {**env, "PYTHONPATH": f"{INJECT}{os.pathsep}{env['PYTHONPATH']}", "CYPHT_AZURE_TEST_FAIL_WRITE": failure}


@pytest.fixture
def small_disk() -> Iterator[Path | None]:
    """A 16 KiB tmpfs, or None where mounting is not allowed."""
    if os.geteuid() != 0:
        yield None
        return
    mount = Path(tempfile.mkdtemp(prefix="cypht-azure-tmpfs-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k,mode=0755", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        mount.rmdir()
        yield None
        return
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)
        mount.rmdir()


def _fill(folder: Path) -> None:
    """Use up the file system, leaving the existing .env in place."""
    with open(folder / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass


@pytest.mark.parametrize("command", ["provision", "rotate-secret", "deprovision"])
@pytest.mark.parametrize("how", ["tmpfs-full", "ENOSPC-on-write", "EIO-on-fsync"])
def test_failed_write_leaves_env_and_graph_clean(
    emulator: Any, tmp_path: Path, small_disk: Path | None, command: str, how: str,
) -> None:
    if how == "tmpfs-full":
        if small_disk is None:
            how = "ENOSPC-on-write"  # the same failure, injected (documented in docs/guarantees.md)
        else:
            folder = small_disk
    if how != "tmpfs-full":
        folder = tmp_path / "cypht"
    env_file = folder / ".env"
    if command == "provision":
        folder.mkdir(exist_ok=True)
        env_file.write_text(USER_LINES)
        seeded = None
    else:
        seeded = seed_provisioned(emulator, env_file)
    env = base_env(emulator, tmp_path / "home")
    if how == "tmpfs-full":
        _fill(folder)
    else:
        env = _inject_env(env, how)
    before = invariant.snapshot(env_file)
    emulator.clear_log()
    run = run_cli(env, *command_args(command, env_file, "--json"))

    cause = ("no space left",) if how != "EIO-on-fsync" else ("input/output error",)
    problems = invariant.cli_failure_is_clean(run, codes={1}, cause=cause)
    assert not problems, "\n".join(problems) + f"\n{run}"
    assert env_file.read_bytes() == before.data, ".env must be byte-identical after a failed write"
    made = [p for m, p in writes(emulator) if p.endswith("/addPassword")]
    taken_back = [p for m, p in writes(emulator) if p.endswith("/removePassword")]
    if command != "deprovision":
        assert len(made) == 1 and len(taken_back) == 1, writes(emulator)
    # No orphan even now: the secret that could not be stored was removed at once.
    invariant.check(emulator, before, run, command=command, after_success=command != "deprovision", php=False)
    if how == "tmpfs-full":
        (folder / "filler").unlink()
    # The next run, with room on the disk, does the job.
    mid = invariant.snapshot(env_file, known_secrets=before.secrets)
    again = run_cli(base_env(emulator, tmp_path / "home"), *command_args(command, env_file, "--json"))
    assert again.returncode == 0, again
    invariant.check(emulator, mid, again, command=command, after_success=True, require_changed=True)
    if seeded is not None and command == "deprovision":
        assert emulator.directory.get_application(app_id=seeded["client_id"]) is None
    assert URL


def test_injection_only_touches_the_temporary_file(tmp_path: Path) -> None:
    """The sitecustomize hook fails writes to the tool's temporary file and nothing else."""
    probe = tmp_path / "probe.txt"
    code = (
        "import os, sys\n"
        f"fd = os.open({str(probe)!r}, os.O_WRONLY | os.O_CREAT, 0o600); os.write(fd, b'ok'); os.close(fd)\n"
        "from cypht_azure import envdisk\n"
        f"envdisk.write_atomic(__import__('pathlib').Path({str(tmp_path / '.env')!r}), 'A=1\\n')\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{INJECT}{os.pathsep}{REPO}", "CYPHT_AZURE_TEST_FAIL_WRITE": "ENOSPC-on-write"}
    done = subprocess.run(["python3" if not os.environ.get("VIRTUAL_ENV") else os.sys.executable, "-c", code],
                          env=env, capture_output=True, text=True)
    assert probe.read_text() == "ok"
    assert done.returncode != 0 and "No space left on device" in done.stderr
    assert not (tmp_path / ".env").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["probe.txt"]

