"""The `.env` file's own dangers (issue 11), through the real CLI against the emulator.

A symlink re-pointed during the run, another program editing `.env` between our read and our commit
point, Docker's single-file bind mount, the owner/group/ACLs/extended attributes a rewrite must keep,
a kill while the secret is in the temporary file, and an edit python-dotenv would misread. Each test
failed on the code before envdisk. "During the run" uses tests/guarantees/inject/sitecustomize.py:
with CYPHT_AZURE_TEST_ACT_AT the CLI waits at a checkpoint until the test has acted.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cypht_azure import envdisk
from tests.guarantees import invariant
from tests.guarantees.harness import (
    SECRET_SHAPE,
    USER_LINES,
    Run,
    base_env,
    command_args,
    command_line,
    run_cli,
    seed_provisioned,
    wait_for,
)
from tests.guarantees.test_disk import AS_NOBODY, INJECT, NOBODY, _needs_root, nobody_env, shared, writes
from tests.optional_tools import require_acl_tools
from tests.tool.conftest import REPO

__all__ = ["shared"]  # the fixture, shared with test_disk.py

WWW_DATA = 33


def _with_inject(env: dict[str, str], **extra: str) -> dict[str, str]:
    return {**env, "PYTHONPATH": f"{INJECT}{os.pathsep}{env['PYTHONPATH']}", **extra}


def run_acting(env: dict[str, str], args: list[str], control: Path, act: Callable[[], None],
               step: str = "signed-in") -> Run:
    """Run the CLI; at checkpoint ``step`` (the .env was read under the lock, nothing is written yet)
    it waits while ``act()`` does what another user or program would do, then goes on."""
    control.mkdir(exist_ok=True)
    paused, resume = control / "paused", control / "resume"
    env = _with_inject(env, CYPHT_AZURE_TEST_ACT_AT=step, CYPHT_AZURE_TEST_PAUSE_FILE=str(paused),
                       CYPHT_AZURE_TEST_RESUME_FILE=str(resume))
    started = time.monotonic()
    proc = subprocess.Popen(command_line(*args), env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    try:
        if not wait_for(paused, 60, proc):
            out, err = proc.communicate(timeout=5)
            raise AssertionError(f"{args[0]} never reached {step} (exit {proc.returncode})\n{out}\n{err}")
        act()
        resume.write_text("go")
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return Run(tuple(args), proc.returncode, out, err, time.monotonic() - started)


def _seed(emulator: Any, env_file: Path, command: str) -> None:
    if command == "provision":
        env_file.parent.mkdir(parents=True, exist_ok=True)
        env_file.write_text(USER_LINES)
    else:
        seed_provisioned(emulator, env_file)


def _secret_works(emulator: Any, env_file: Path) -> None:
    doc = envdisk.load(env_file)
    client_id, secret = doc.get("OUTLOOK_CLIENT_ID"), doc.get("OUTLOOK_CLIENT_SECRET")
    assert client_id and secret, env_file.read_text()
    ok, detail = invariant.secret_accepted(emulator, client_id, secret)
    assert ok, detail


# --------------------------------------------------------------------------- 1. symlink race

def _linked_env(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Cypht's folder with `.env` a symlink to `real.env` beside it (which holds the user's lines)."""
    folder = tmp_path / "cypht"
    folder.mkdir()
    real = folder / "real.env"
    real.write_text(USER_LINES)
    link = folder / ".env"
    link.symlink_to("real.env")
    return folder, real, link


@pytest.mark.parametrize("command", ["provision", "rotate-secret"])
def test_symlink_repointed_during_the_run_redirects_nothing(emulator: Any, tmp_path: Path, command: str) -> None:
    """Whoever controls Cypht's folder re-points `.env` at another file while Graph is called: the run
    writes the file it read (resolved once), never the new link target."""
    folder, real, link = _linked_env(tmp_path)
    if command == "rotate-secret":
        seed_provisioned(emulator, link)  # the secret is named for the path Cypht's admin gives
    victim = tmp_path / "etc" / "shadow"
    victim.parent.mkdir()
    victim.write_text("root:*:19000:0:99999:7:::\n")
    before = invariant.snapshot(real)

    def repoint() -> None:
        new = folder / ".env.new"
        new.symlink_to(victim)
        os.replace(new, link)

    run = run_acting(base_env(emulator, tmp_path / "home"), command_args(command, link, "--json"),
                     tmp_path / "control", repoint)
    assert run.returncode == 0, run
    assert victim.read_text() == "root:*:19000:0:99999:7:::\n", "the run wrote through the re-pointed link"
    invariant.check(emulator, before, run, command=command, require_changed=True)
    _secret_works(emulator, real)


def test_root_refuses_a_symlink_another_user_owns(emulator: Any, tmp_path: Path) -> None:
    _needs_root()
    _folder, real, link = _linked_env(tmp_path)
    os.lchown(link, WWW_DATA, WWW_DATA)  # www-data could re-point it at /etc/shadow at any time
    before = invariant.snapshot(real)
    emulator.clear_log()
    run = run_cli(base_env(emulator, tmp_path / "home"), *command_args("provision", link))
    problems = invariant.cli_failure_is_clean(run, codes={2}, cause=("protected_symlinks",))
    assert not problems, "\n".join(problems) + f"\n{run}"
    assert "realpath" in run.stderr
    assert emulator.request_log == []
    assert real.read_bytes() == before.data


# --------------------------------------------------------------------------- 2. lost edits

@pytest.mark.parametrize("command", ["provision", "rotate-secret", "deprovision"])
@pytest.mark.parametrize("editor", ["appends", "saves-by-rename"])
def test_line_added_by_another_program_during_the_run_is_kept(
    emulator: Any, tmp_path: Path, command: str, editor: str,
) -> None:
    env_file = tmp_path / "cypht" / ".env"
    _seed(emulator, env_file, command)
    snapshots: list[invariant.Snapshot] = []

    def edit() -> None:
        line = "SMTP_HOST=mail.example.com\n"
        if editor == "appends":
            with open(env_file, "a") as f:
                f.write(line)
        else:  # as vim or a config tool does: a new file renamed over the old one
            tmp = env_file.with_name(".env.edit")
            tmp.write_bytes(env_file.read_bytes() + line.encode())
            os.replace(tmp, env_file)
        snapshots.append(invariant.snapshot(env_file))

    run = run_acting(base_env(emulator, tmp_path / "home"), command_args(command, env_file, "--json"),
                     tmp_path / "control", edit)
    assert run.returncode == 0, run
    doc = envdisk.load(env_file)
    assert doc.get("SMTP_HOST") == "mail.example.com", "the other program's line was dropped"
    invariant.check(emulator, snapshots[0], run, command=command, require_changed=True)


def test_key_changed_by_another_program_stops_before_the_commit_point(emulator: Any, tmp_path: Path) -> None:
    """Another program changed a key the run is about to write: nothing is written over it, and the
    secret the run had added is taken back."""
    env_file = tmp_path / "cypht" / ".env"
    seeded = seed_provisioned(emulator, env_file)
    edited: list[bytes] = []

    def edit() -> None:
        text = env_file.read_text().replace(seeded["secret"], "set-by-hand")
        env_file.write_text(text)
        edited.append(env_file.read_bytes())

    emulator.clear_log()
    run = run_acting(base_env(emulator, tmp_path / "home"), command_args("rotate-secret", env_file),
                     tmp_path / "control", edit)
    problems = invariant.cli_failure_is_clean(run, codes={1}, cause=("changed by another program",))
    assert not problems, "\n".join(problems) + f"\n{run}"
    assert env_file.read_bytes() == edited[0]
    added = [p for m, p in writes(emulator) if p.endswith("/addPassword")]
    taken_back = [p for m, p in writes(emulator) if p.endswith("/removePassword")]
    assert len(added) == 1 and len(taken_back) == 1, writes(emulator)
    app = emulator.directory.get_application(app_id=seeded["client_id"])
    assert [c["keyId"].lower() for c in app["passwordCredentials"]] == [seeded["key_id"]]


# --------------------------------------------------------------------------- 3. Docker's bind mount

@pytest.fixture
def bind_mounted(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(host file, container .env): the host's cypht.env bind-mounted over a container's .env, as
    `docker run -v ./cypht.env:/usr/local/share/cypht/.env` does."""
    _needs_root()
    host = tmp_path / "host" / "cypht.env"
    host.parent.mkdir()
    host.write_text(USER_LINES)
    container = tmp_path / "container" / "usr-local-share-cypht"
    container.mkdir(parents=True)
    env_file = container / ".env"
    env_file.write_text("# the image's own .env.example\n")
    done = subprocess.run(["mount", "--bind", str(host), str(env_file)], capture_output=True, text=True)
    assert done.returncode == 0, f"mount --bind failed (CI runs as root): {done.stderr}"
    try:
        yield host, env_file
    finally:
        subprocess.run(["umount", str(env_file)], check=False)


def test_bind_mounted_env_is_written_in_place_by_provision_and_rotate(
    emulator: Any, tmp_path: Path, bind_mounted: tuple[Path, Path],
) -> None:
    host, env_file = bind_mounted
    env = base_env(emulator, tmp_path / "home")
    inode = os.stat(env_file).st_ino
    for command in ("provision", "rotate-secret"):
        before = invariant.snapshot(env_file)
        run = run_cli(env, *command_args(command, env_file, "--json"))
        assert run.returncode == 0, run
        assert os.stat(env_file).st_ino == inode, "the mount point was replaced"
        assert host.read_bytes() == env_file.read_bytes()
        assert sorted(os.listdir(env_file.parent)) == [".env"], "a backup or temporary file was left"
        invariant.check(emulator, before, run, command=command, require_changed=True)
        _secret_works(emulator, env_file)
    rotated = envdisk.load(env_file).get("OUTLOOK_CLIENT_SECRET")
    # It survives: the host's file (what the next container gets) holds the rotated secret.
    subprocess.run(["umount", str(env_file)], check=True)
    assert envdisk.load(host).get("OUTLOOK_CLIENT_SECRET") == rotated
    _secret_works(emulator, host)


def test_kill_during_the_in_place_write_is_repaired_by_the_next_run(
    emulator: Any, tmp_path: Path, bind_mounted: tuple[Path, Path],
) -> None:
    """SIGKILL in the fsync of the in-place write (the new text is in the file, the backup beside it):
    the next run puts the old text back first, then rotates; the killed run's secret is an orphan
    it removes."""
    host, env_file = bind_mounted
    env = base_env(emulator, tmp_path / "home")
    assert run_cli(env, *command_args("provision", env_file)).returncode == 0
    before = invariant.snapshot(env_file)
    _kill_in_write(_with_inject(env, CYPHT_AZURE_TEST_FAIL_WRITE="PAUSE-on-fsync",
                                CYPHT_AZURE_TEST_PAUSE_PATH=str(env_file)),
                   command_args("rotate-secret", env_file), tmp_path / "control")
    backup = env_file.with_name(f".{env_file.name}.cypht-azure.backup")
    assert backup.read_bytes() == before.data and stat.S_IMODE(backup.stat().st_mode) == 0o600
    run = run_cli(env, *command_args("rotate-secret", env_file, "--json"))
    assert run.returncode == 0, run
    assert sorted(os.listdir(env_file.parent)) == [".env"]
    invariant.check(emulator, before, run, command="rotate-secret", require_changed=True)
    _secret_works(emulator, host)


def test_torn_in_place_write_is_repaired_from_the_backup(
    emulator: Any, tmp_path: Path, bind_mounted: tuple[Path, Path],
) -> None:
    """A run killed while rewriting a bind-mounted file leaves the old content in the backup beside it
    and a torn file; the next run puts the old content back before it does anything else."""
    host, env_file = bind_mounted
    env = base_env(emulator, tmp_path / "home")
    assert run_cli(env, *command_args("provision", env_file)).returncode == 0
    good = env_file.read_bytes()
    backup = env_file.with_name(f".{env_file.name}.cypht-azure.backup")  # as docs/envfile.md names it
    fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, good)
    os.close(fd)
    with open(env_file, "r+b") as f:  # the first half of a new text, as a kill mid-write leaves it
        f.write(good[: len(good) // 2].replace(b"Cypht", b"Cyp\"t"))
        f.truncate(len(good) // 2)
    assert run_cli(env, "status", "--env-file", str(env_file)).returncode != 0, "the torn file should not parse"

    before = invariant.snapshot(env_file)
    before.data, before.listing = good, {".env"}
    run = run_cli(env, *command_args("rotate-secret", env_file, "--json"))
    assert run.returncode == 0, run
    assert not backup.exists()
    invariant.check(emulator, before, run, command="rotate-secret", require_changed=True)
    _secret_works(emulator, host)


# --------------------------------------------------------------------------- 4. checks before a secret

@pytest.mark.parametrize("command", ["provision", "rotate-secret"])
def test_read_only_file_is_refused_even_as_root(emulator: Any, tmp_path: Path, command: str) -> None:
    _needs_root()
    env_file = tmp_path / "cypht" / ".env"
    _seed(emulator, env_file, command)
    env_file.chmod(0o444)
    before = invariant.snapshot(env_file)
    emulator.clear_log()
    run = run_cli(base_env(emulator, tmp_path / "home"), *command_args(command, env_file))
    problems = invariant.cli_failure_is_clean(run, codes={2}, cause=("read-only",))
    assert not problems, "\n".join(problems) + f"\n{run}"
    assert emulator.request_log == []
    assert env_file.read_bytes() == before.data and stat.S_IMODE(env_file.stat().st_mode) == 0o444


def test_file_made_read_only_during_the_sign_in_is_refused_before_the_secret(emulator: Any, tmp_path: Path) -> None:
    """The disk checks run again right before the secret is created: a file made read-only while the
    run was signing in stops it there, with no secret added."""
    _needs_root()
    env_file = tmp_path / "cypht" / ".env"
    seed_provisioned(emulator, env_file)
    before = invariant.snapshot(env_file)
    emulator.clear_log()
    run = run_acting(base_env(emulator, tmp_path / "home"), command_args("rotate-secret", env_file),
                     tmp_path / "control", lambda: env_file.chmod(0o444))
    problems = invariant.cli_failure_is_clean(run, codes={2}, cause=("read-only",))
    assert not problems, "\n".join(problems) + f"\n{run}"
    assert not [p for m, p in writes(emulator) if p.endswith("/addPassword")], writes(emulator)
    assert env_file.read_bytes() == before.data


def _seeded_for_nobody(emulator: Any, shared: Path, *, group: int) -> Path:
    """A provisioned .env that `nobody` owns (with ``group``), in a folder `nobody` owns."""
    _needs_root()
    env_file = shared / "cypht" / ".env"
    seed_provisioned(emulator, env_file)
    os.chown(env_file.parent, NOBODY, NOBODY)
    os.chown(env_file, NOBODY, group)
    return env_file


def test_owner_who_cannot_keep_the_group_is_refused_before_any_request(
    emulator: Any, shared: Path,
) -> None:
    """nobody owns .env, www-data's group reads it; nobody is not in that group, so the rewritten file
    could not keep it (fchown EPERM): refused before signing in, not after the secret exists."""
    env_file = _seeded_for_nobody(emulator, shared, group=WWW_DATA)
    env_file.chmod(0o640)
    before = invariant.snapshot(env_file)
    emulator.clear_log()
    run = run_cli(nobody_env(emulator, shared), *command_args("rotate-secret", env_file), prefix=AS_NOBODY)
    problems = invariant.cli_failure_is_clean(run, codes={2}, cause=(f"group id {WWW_DATA}",))
    assert not problems, "\n".join(problems) + f"\n{run}"
    assert emulator.request_log == []
    assert env_file.read_bytes() == before.data and (env_file.stat().st_gid == WWW_DATA)


def _acl(path: Path) -> str:
    return subprocess.run(["getfacl", "--omit-header", "--absolute-names", str(path)],
                          capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("command", ["provision", "rotate-secret"])
def test_acls_and_extended_attributes_are_kept(emulator: Any, tmp_path: Path, command: str) -> None:
    require_acl_tools()
    env_file = tmp_path / "cypht" / ".env"
    _seed(emulator, env_file, command)
    env_file.chmod(0o600)
    subprocess.run(["setfacl", "-m", f"u:{WWW_DATA}:r", str(env_file)], check=True)
    subprocess.run(["setfattr", "-n", "user.backup-policy", "-v", "nightly", str(env_file)], check=True)
    acl = _acl(env_file)
    assert "user:www-data:r--" in acl or f"user:{WWW_DATA}:r--" in acl
    before = invariant.snapshot(env_file)
    run = run_cli(base_env(emulator, tmp_path / "home"), *command_args(command, env_file, "--json"))
    assert run.returncode == 0, run
    assert _acl(env_file) == acl, "the POSIX ACL (www-data's read access) was dropped"
    assert os.getxattr(env_file, "user.backup-policy") == b"nightly"
    invariant.check(emulator, before, run, command=command, require_changed=True)


def test_attribute_that_cannot_be_copied_is_refused_before_any_request(emulator: Any, shared: Path) -> None:
    """nobody may not set security.capability on the new file: refused up front, never dropped."""
    require_acl_tools()
    env_file = _seeded_for_nobody(emulator, shared, group=NOBODY)
    subprocess.run(["setfattr", "-n", "security.capability", "-v", "0x0100000200200000000000000000000000000000",
                    str(env_file)], check=True)
    before = invariant.snapshot(env_file)
    emulator.clear_log()
    run = run_cli(nobody_env(emulator, shared), *command_args("rotate-secret", env_file), prefix=AS_NOBODY)
    problems = invariant.cli_failure_is_clean(run, codes={2}, cause=("security.capability",))
    assert not problems, "\n".join(problems) + f"\n{run}"
    assert emulator.request_log == []
    assert env_file.read_bytes() == before.data
    assert os.getxattr(env_file, "security.capability")


def test_new_env_gets_the_folders_owner_and_group_and_0640(emulator: Any, tmp_path: Path) -> None:
    _needs_root()
    folder = tmp_path / "cypht"
    folder.mkdir()
    os.chown(folder, WWW_DATA, WWW_DATA)
    env_file = folder / ".env"
    before = invariant.snapshot(env_file)
    run = run_cli(base_env(emulator, tmp_path / "home"), *command_args("provision", env_file, "--json"))
    assert run.returncode == 0, run
    st = env_file.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (WWW_DATA, WWW_DATA, 0o640)
    invariant.check(emulator, before, run, command="provision", require_changed=True)


# --------------------------------------------------------------------------- 9. killed while writing

def _files_with_secrets(folder: Path, known: set[str], skip: str) -> list[str]:
    found = []
    for p in folder.iterdir():
        if p.name == skip or not p.is_file():
            continue
        text = p.read_bytes().decode("utf-8", "replace")
        if any(m.group(0) not in known for m in SECRET_SHAPE.finditer(text)):
            found.append(p.name)
    return found


def _kill_in_write(env: dict[str, str], args: list[str], control: Path) -> None:
    control.mkdir(exist_ok=True)
    paused = control / "paused"
    proc = subprocess.Popen(command_line(*args), env={**env, "CYPHT_AZURE_TEST_PAUSE_FILE": str(paused)},
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert wait_for(paused, 60, proc), proc.communicate(timeout=5)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("command", ["provision", "rotate-secret"])
@pytest.mark.parametrize("tmpfile", ["O_TMPFILE", "no-O_TMPFILE"])
def test_kill_while_the_secret_is_in_the_temporary_file(
    emulator: Any, tmp_path: Path, command: str, tmpfile: str,
) -> None:
    """SIGKILL after the new text (with the new secret) was written to the temporary file, before the
    rename. With O_TMPFILE the file had no name: nothing is left. Without it (a file system that lacks
    O_TMPFILE) the 0600 temporary file is left, and the next run removes it before anything else."""
    env_file = tmp_path / "cypht" / ".env"
    _seed(emulator, env_file, command)
    before = invariant.snapshot(env_file)
    env = base_env(emulator, tmp_path / "home")
    extra = {"CYPHT_AZURE_TEST_FAIL_WRITE": "PAUSE-on-fsync"}
    if tmpfile == "no-O_TMPFILE":
        extra["CYPHT_AZURE_TEST_NO_TMPFILE"] = "1"
    _kill_in_write(_with_inject(env, **extra), command_args(command, env_file), tmp_path / "control")
    assert env_file.read_bytes() == before.data
    left = _files_with_secrets(env_file.parent, before.secrets, env_file.name)
    if tmpfile == "O_TMPFILE":
        assert left == [], f"a file holding the new secret was left: {left}"
    else:
        assert len(left) == 1 and stat.S_IMODE(os.stat(env_file.parent / left[0]).st_mode) == 0o600, left
    run = run_cli(env, *command_args(command, env_file, "--json"))
    assert run.returncode == 0, run
    assert _files_with_secrets(env_file.parent, before.secrets | invariant.snapshot(env_file).secrets,
                               env_file.name) == []
    invariant.check(emulator, before, run, command=command, require_changed=True)


# --------------------------------------------------------------------------- 11. read-back before Graph

@pytest.mark.parametrize("command", ["provision", "rotate-secret"])
def test_edit_python_dotenv_would_misread_is_refused_before_any_request(
    emulator: Any, tmp_path: Path, command: str,
) -> None:
    """symfony/dotenv reads A as `x\\`; python-dotenv reads `\\'` as an escaped quote and swallows the
    lines after it, so the written keys would not read back: refused before signing in."""
    env_file = tmp_path / "cypht" / ".env"
    _seed(emulator, env_file, command)
    # Just before the lines the run writes: the end of the file, or the secret's line.
    text = env_file.read_text()
    at = text.find("OUTLOOK_CLIENT_SECRET=") if command == "rotate-secret" else len(text)
    env_file.write_text(text[:at] + "A='x\\'\n" + text[at:])
    before = invariant.snapshot(env_file)
    emulator.clear_log()
    run = run_cli(base_env(emulator, tmp_path / "home"), *command_args(command, env_file))
    problems = invariant.cli_failure_is_clean(run, codes={2}, cause=("python-dotenv",))
    assert not problems, "\n".join(problems) + f"\n{run}"
    assert emulator.request_log == [], "the edit must be checked before signing in"
    assert env_file.read_bytes() == before.data
