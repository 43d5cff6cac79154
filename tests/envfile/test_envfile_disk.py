"""envdisk's own rules, at the library level: resolving once, another program's edits, repair under
the lock, the temporary file, extended attributes. The real-CLI versions are in
tests/guarantees/test_env_on_disk.py."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
from pathlib import Path

import pytest

from cypht_azure import envdisk
from cypht_azure.envfile import EnvFileError
from tests.optional_tools import require_acl_tools

IS_ROOT = os.geteuid() == 0


def test_commit_works_on_the_file_resolved_at_open(tmp_path: Path) -> None:
    real, other = tmp_path / "real.env", tmp_path / "other.env"
    real.write_text("A=1\n")
    other.write_text("B=2\n")
    link = tmp_path / ".env"
    link.symlink_to(real)
    with envdisk.open_target(link) as target:
        doc = target.read()
        link.unlink()
        link.symlink_to(other)  # re-pointed between the read and the commit
        target.commit(doc.updated({"A": "3"}).render())
    assert real.read_text() == "A='3'\n" and other.read_text() == "B=2\n"


def test_commit_refuses_an_edit_it_did_not_see_without_rebase(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("A=1\n")
    with envdisk.open_target(env) as target:
        doc = target.read()
        with open(env, "a") as f:
            f.write("B=2\n")
        with pytest.raises(EnvFileError, match="changed by another program"):
            target.commit(doc.updated({"A": "3"}).render())
    assert env.read_text() == "A=1\nB=2\n"


def test_commit_rebases_onto_an_edit_by_rename(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("A=1\n")
    with envdisk.open_target(env) as target:
        doc = target.read()
        (tmp_path / "new").write_text("A=1\nB=2\n")
        os.replace(tmp_path / "new", env)
        target.commit(doc.updated({"A": "3"}).render(), rebase=lambda now: now.updated({"A": "3"}).render())
    assert env.read_text() == "A='3'\nB=2\n"


def test_rebase_never_writes_text_that_does_not_parse(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("A=1\n")
    with envdisk.open_target(env) as target:
        doc = target.read()
        env.write_text("A=1\nB=a b\n")  # the other program broke the file
        with pytest.raises(EnvFileError, match="surrounded by quotes"):
            target.commit(doc.updated({"A": "3"}).render(), rebase=lambda now: now.render())
    assert env.read_text() == "A=1\nB=a b\n"


def test_stale_temporary_files_are_removed_under_the_lock(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("A=1\n")
    stale = tmp_path / "..env.cypht-azure-0123456789ab.tmp"
    stale.write_text("A='left by a killed run'\n")
    unrelated = tmp_path / ".other.tmp"
    unrelated.write_text("x")
    with envdisk.open_target(env) as target, target.locked():
        pass
    assert not stale.exists() and unrelated.exists()


def test_backup_of_a_killed_in_place_write_is_restored(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("A='new but cut")  # torn
    backup = tmp_path / "..env.cypht-azure.backup"
    fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, b"A=old\n")
    os.close(fd)
    with envdisk.open_target(env) as target, target.locked():
        assert target.read().get("A") == "old"
    assert not backup.exists() and env.read_text() == "A=old\n"


@pytest.mark.skipif(not IS_ROOT, reason="needs a file of another user")
def test_backup_of_another_user_is_not_trusted(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("A=1\n")
    backup = tmp_path / "..env.cypht-azure.backup"
    backup.write_text("A=planted\n")
    os.chown(backup, 33, 33)
    with (pytest.raises(EnvFileError, match="not a backup this user made"), envdisk.open_target(env) as target,
          target.locked()):
        pass
    assert env.read_text() == "A=1\n"


def test_without_o_tmpfile_a_named_0600_file_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open
    names: list[str] = []

    def no_tmpfile(path: str, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        if hasattr(os, "O_TMPFILE") and flags & os.O_TMPFILE == os.O_TMPFILE:
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
        if flags & os.O_CREAT:
            names.append(path)
        return real_open(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(envdisk.os, "open", no_tmpfile)
    envdisk.write_atomic(tmp_path / ".env", "A=1\n")
    monkeypatch.undo()
    assert any(n.startswith("..env.cypht-azure-") for n in names)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"]


def test_o_tmpfile_leaves_no_name_until_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not hasattr(os, "O_TMPFILE"):
        pytest.skip("no O_TMPFILE on this platform")
    seen: list[list[str]] = []
    real_fsync = os.fsync

    def look(fd: int) -> None:
        seen.append(sorted(os.listdir(tmp_path)))
        real_fsync(fd)

    monkeypatch.setattr(envdisk.os, "fsync", look)
    envdisk.write_atomic(tmp_path / ".env", "A='secret-ish'\n")
    monkeypatch.undo()
    assert seen and seen[0] == [], f"a named file existed while the data was written: {seen}"


def test_extended_attributes_and_acl_are_copied(tmp_path: Path) -> None:
    require_acl_tools()
    env = tmp_path / ".env"
    env.write_text("A=1\n")
    env.chmod(0o600)
    os.setxattr(env, "user.note", b"keep me")
    acl = subprocess.run(["setfacl", "-m", "u:33:r", str(env)], capture_output=True, text=True)
    assert acl.returncode == 0, acl.stderr
    before = os.getxattr(env, "system.posix_acl_access")
    envdisk.write_atomic(env, "A=2\n")
    assert os.getxattr(env, "user.note") == b"keep me"
    assert os.getxattr(env, "system.posix_acl_access") == before
    assert stat.S_IMODE(env.stat().st_mode) == 0o640  # the ACL mask shows in the group bits, as before


@pytest.mark.skipif(not IS_ROOT, reason="mount --bind needs root")
def test_bind_mounted_file_is_recognised_and_written_in_place(tmp_path: Path) -> None:
    host = tmp_path / "host.env"
    host.write_text("A=1\n")
    folder = tmp_path / "container"
    folder.mkdir()
    env = folder / ".env"
    env.write_text("")
    done = subprocess.run(["mount", "--bind", str(host), str(env)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    try:
        with envdisk.open_target(env) as target:
            assert target.mount_point
            doc = target.read()
            target.preflight()
            target.commit(doc.updated({"A": "2"}).render())
        assert host.read_text() == "A='2'\n" and os.listdir(folder) == [".env"]
    finally:
        subprocess.run(["umount", str(env)], check=False)


def test_parse_errors_name_the_path_given(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("A=a b\n")
    with pytest.raises(EnvFileError) as caught:
        envdisk.load(env)
    assert str(env) in str(caught.value) and "line 1" in str(caught.value)


def test_commit_refuses_a_file_made_read_only_after_the_read(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("A=1\n")
    with envdisk.open_target(env) as target:
        doc = target.read()
        env.chmod(0o444)
        with pytest.raises(EnvFileError, match="read-only"):
            target.commit(doc.updated({"A": "2"}).render(), rebase=lambda now: now.updated({"A": "2"}).render())
    assert env.read_text() == "A=1\n"
