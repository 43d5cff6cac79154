"""Reading, checking, locking and atomically replacing .env files on disk."""

from __future__ import annotations

import errno
import itertools
import multiprocessing
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cypht_azure import envdisk, envfile
from cypht_azure.envdisk import check_writable, editing, load, locked, write_atomic
from cypht_azure.envfile import EnvFileError

NOBODY = 65534
IS_ROOT = os.geteuid() == 0


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# --- running a check as an unprivileged user ------------------------------------------------------

def _run_unprivileged(queue: Any, fn: Callable[..., object], args: tuple[object, ...]) -> None:
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    try:
        fn(*args)
        queue.put(None)
    except EnvFileError as exc:
        queue.put(str(exc))


def unprivileged(fn: Callable[..., object], *args: object) -> str | None:
    """Run fn as 'nobody' when the tests run as root (root bypasses permissions); the error text or None."""
    if not IS_ROOT:
        try:
            fn(*args)
            return None
        except EnvFileError as exc:
            return str(exc)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_run_unprivileged, args=(queue, fn, args))
    child.start()
    result: str | None = queue.get(timeout=20)
    child.join(timeout=20)
    return result


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder outside pytest's root-only tmp tree, owned by the unprivileged user."""
    folder = Path(tempfile.mkdtemp(prefix="envfile-"))
    folder.chmod(0o755)
    if IS_ROOT:
        os.chown(folder, NOBODY, NOBODY)
    try:
        yield folder
    finally:
        folder.chmod(0o755)
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()


# --- load -------------------------------------------------------------------------------------------

def test_missing_file_is_an_empty_document(tmp_path: Path) -> None:
    doc = load(tmp_path / ".env")
    assert doc.render() == "" and doc.path == tmp_path / ".env" and doc.keys() == set()


def test_load_reads_values(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"A=1\r\nB='x y'\r\n")
    doc = load(tmp_path / ".env")
    assert (doc.get("A"), doc.get("B"), doc.newline) == ("1", "x y", "\r\n")


@pytest.mark.parametrize(
    ("content", "problem", "line"),
    [
        (b"A=1\nB=\xff\xfe\n", "not valid UTF-8", 2),
        (b"A=1\n\nB=\0\n", "NUL bytes", 3),
        (b"\xef\xbb\xbfA=1\n", "byte-order mark", 1),
        (b"A=1\nB=two words\n", "spaces must be surrounded by quotes", 2),
    ],
)
def test_bad_content_refused_with_line(tmp_path: Path, content: bytes, problem: str, line: int) -> None:
    (tmp_path / ".env").write_bytes(content)
    with pytest.raises(EnvFileError, match=problem) as caught:
        load(tmp_path / ".env")
    assert caught.value.line == line
    assert caught.value.path == tmp_path / ".env"
    assert caught.value.fix


def test_huge_file_refused(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"# " + b"x" * envfile.MAX_ENV_BYTES + b"\n")
    with pytest.raises(EnvFileError, match="larger than 1024 KiB"):
        load(tmp_path / ".env")


def test_directory_in_place_of_the_file(tmp_path: Path) -> None:
    (tmp_path / ".env").mkdir()
    for call in (load, check_writable, lambda p: write_atomic(p, "A=1\n")):
        with pytest.raises(EnvFileError, match="directory"):
            call(tmp_path / ".env")


def test_fifo_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / ".env")
    with pytest.raises(EnvFileError, match="not a regular file"):
        load(tmp_path / ".env")


# --- symlinks ---------------------------------------------------------------------------------------

def test_symlink_followed_and_kept(tmp_path: Path) -> None:
    real_dir = tmp_path / "etc"
    real_dir.mkdir()
    (real_dir / "cypht.env").write_text("A=1\n")
    (real_dir / "cypht.env").chmod(0o640)
    link = tmp_path / ".env"
    link.symlink_to("etc/cypht.env")
    assert load(link).get("A") == "1"
    check_writable(link)
    with locked(link):
        write_atomic(link, load(link).updated({"A": "2"}).render())
    assert link.is_symlink() and os.readlink(link) == "etc/cypht.env"
    assert (real_dir / "cypht.env").read_text() == "A='2'\n"
    assert stat.S_IMODE((real_dir / "cypht.env").stat().st_mode) == 0o640
    assert leftovers(real_dir) == [] and leftovers(tmp_path) == []


def test_dangling_symlink_refused(tmp_path: Path) -> None:
    link = tmp_path / ".env"
    link.symlink_to(tmp_path / "nowhere" / ".env")
    for call in (load, check_writable, lambda p: write_atomic(p, "A=1\n"), lambda p: locked(p).__enter__()):
        with pytest.raises(EnvFileError, match="does not exist") as caught:
            call(link)
        assert "Create the target file" in str(caught.value)
    assert link.is_symlink() and not (tmp_path / "nowhere").exists()


def test_symlink_loop_refused(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(EnvFileError, match="link loop"):
        load(tmp_path / "a")


# --- atomic write -----------------------------------------------------------------------------------

def test_new_file_is_0640_of_the_folder_and_lf(tmp_path: Path) -> None:
    folder = tmp_path / "cypht"
    folder.mkdir()
    if IS_ROOT:
        os.chown(folder, NOBODY, 33)  # e.g. a folder of www-data's group: the web server reads .env
    target = folder / ".env"
    write_atomic(target, load(target).updated({"K": "v"}, block_comment="managed").render())
    assert target.read_bytes() == b"# managed\nK='v'\n"
    st = target.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640, "never world-readable; the folder's group may read"
    assert (st.st_uid, st.st_gid) == (folder.stat().st_uid, folder.stat().st_gid)
    assert leftovers(folder) == []


def test_mode_kept_and_no_bom_written(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    target.write_text("A=1\n")
    target.chmod(0o644)
    write_atomic(target, "A=2\n")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert target.read_bytes() == b"A=2\n"


@pytest.mark.skipif(not IS_ROOT, reason="only root can give a file to another owner")
def test_owner_kept(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    target.write_text("A=1\n")
    os.chown(target, NOBODY, NOBODY)
    target.chmod(0o640)
    write_atomic(target, "A=2\n")
    st = target.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (NOBODY, NOBODY, 0o640)


def test_unparseable_text_never_written(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    target.write_text("A=1\n")
    with pytest.raises(EnvFileError, match="line 2"):
        write_atomic(target, "A=1\nB=a b\n")
    with pytest.raises(EnvFileError, match="byte-order mark"):
        write_atomic(target, "\ufeffA=1\n")
    assert target.read_text() == "A=1\n" and leftovers(tmp_path) == []


def _fail(err: int) -> Callable[..., Any]:
    def fail(*_: object, **__: object) -> Any:
        raise OSError(err, os.strerror(err))

    return fail


@pytest.mark.parametrize(
    ("function", "err", "problem"),
    [
        ("write", errno.ENOSPC, "Free some disk space"),
        ("fsync", errno.EIO, "could not write it"),
        ("fchmod", errno.EPERM, "could not write it"),
        ("replace", errno.EACCES, "could not write it"),
    ],
)
def test_failures_leave_original_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, function: str, err: int, problem: str
) -> None:
    target = tmp_path / ".env"
    target.write_text("A=original\n")
    monkeypatch.setattr(envdisk.os, function, _fail(err))
    with pytest.raises(EnvFileError, match=problem):
        write_atomic(target, "A=new\n")
    monkeypatch.undo()
    assert target.read_text() == "A=original\n"
    assert leftovers(tmp_path) == []


def test_partial_writes_are_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write
    monkeypatch.setattr(envdisk.os, "write", lambda fd, data: real_write(fd, bytes(data[:3])))
    write_atomic(tmp_path / ".env", "LONGER_KEY='a value'\n")
    monkeypatch.undo()
    assert (tmp_path / ".env").read_text() == "LONGER_KEY='a value'\n"


def test_keyboard_interrupt_still_removes_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(envdisk.os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / ".env", "A=1\n")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


# --- permissions (checked as an unprivileged user) -------------------------------------------------

def test_writable_file_passes(shared_dir: Path) -> None:
    target = shared_dir / ".env"
    target.write_text("A=1\n")
    if IS_ROOT:
        os.chown(target, NOBODY, NOBODY)
    assert unprivileged(check_writable, target) is None
    assert unprivileged(check_writable, shared_dir / "new.env") is None


def test_read_only_folder(shared_dir: Path) -> None:
    shared_dir.chmod(0o555)
    error = unprivileged(check_writable, shared_dir / ".env")
    assert error is not None and "is not writable" in error and "chmod u+w" in error
    error = unprivileged(write_atomic, shared_dir / ".env", "A=1\n")
    assert error is not None and "Run as the file's owner" in error


def test_read_only_file(shared_dir: Path) -> None:
    target = shared_dir / ".env"
    target.write_text("A=1\n")
    if IS_ROOT:
        os.chown(target, NOBODY, NOBODY)
    target.chmod(0o444)
    error = unprivileged(check_writable, target)
    assert error is not None and "read-only" in error and "chmod u+w" in error


@pytest.mark.skipif(not IS_ROOT, reason="needs a file owned by another user")
def test_file_of_another_owner(shared_dir: Path) -> None:
    target = shared_dir / ".env"
    target.write_text("A=1\n")
    target.chmod(0o666)  # writable, but a rewrite by nobody would change its owner
    error = unprivileged(check_writable, target)
    assert error is not None and "belongs to user id 0" in error


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(EnvFileError, match="does not exist"):
        check_writable(tmp_path / "no" / ".env")


def test_editing_checks_before_yielding(shared_dir: Path) -> None:
    def edit(path: Path) -> None:
        with editing(path) as doc:
            raise AssertionError(f"yielded {doc!r}")

    shared_dir.chmod(0o555)
    error = unprivileged(edit, shared_dir / ".env")
    assert error is not None and "not writable" in error


# --- locking ----------------------------------------------------------------------------------------

def _increment(path_text: str, rounds: int, log_text: str) -> None:
    path = Path(path_text)
    for _ in range(rounds):
        with locked(path, timeout=20):
            start = time.monotonic()
            doc = load(path)
            count = int(doc.get("COUNT") or "0")
            time.sleep(0.005)  # widen the race window
            write_atomic(path, doc.updated({"COUNT": str(count + 1)}).render())
            end = time.monotonic()
        with open(log_text, "a") as log:
            log.write(f"{start} {end}\n")


def test_concurrent_runs_serialise(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    target.write_text("# counter\n")
    ctx = multiprocessing.get_context("spawn")
    workers = [
        ctx.Process(target=_increment, args=(str(target), 10, str(tmp_path / f"log{i}"))) for i in range(4)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    assert load(target).get("COUNT") == "40"
    spans = sorted(
        tuple(map(float, line.split())) for i in range(4) for line in (tmp_path / f"log{i}").read_text().splitlines()
    )
    assert all(prev[1] <= nxt[0] for prev, nxt in itertools.pairwise(spans))
    assert leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("log")) == [".env"]


def _hold_lock(path_text: str, ready: Any, release: Any) -> None:
    with locked(Path(path_text)):
        ready.set()
        release.wait(20)


def test_lock_wait_is_bounded(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(tmp_path / ".env"), ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        started = time.monotonic()
        with pytest.raises(EnvFileError, match="another cypht-azure run"), locked(tmp_path / ".env", timeout=0.3):
            pass
        assert time.monotonic() - started > 0.25  # it waited, then gave up (the raise)
    finally:
        release.set()
        holder.join(10)
    with locked(tmp_path / ".env", timeout=5):
        pass


def test_lock_through_symlink_is_the_targets_folder(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / ".env").write_text("")
    (tmp_path / "link.env").symlink_to(tmp_path / "real" / ".env")
    with locked(tmp_path / "real" / ".env"), pytest.raises(EnvFileError, match="another"), locked(
        tmp_path / "link.env", timeout=0.1
    ):
        pass
