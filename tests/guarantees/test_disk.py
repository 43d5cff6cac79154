"""Disk faults: a folder or file that cannot be written, a full disk during the write, a directory or a
dangling symlink where `.env` should be; and the file's own dangers (issue 11): a symlink re-pointed
during the run, another program editing `.env` between our read and our rename, Docker's
single-file bind mount, owner/group/ACLs/extended attributes, a kill while the secret is in a
temporary file, and an edit python-dotenv would misread.

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
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cypht_azure import envdisk
from tests.guarantees import invariant
from tests.guarantees.harness import (
    SECRET_SHAPE,
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
    env = base_env(emulator, shared / "home", CYPHT_AZURE_CA_FILE=str(shared / "ca.pem"))
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


# =========================================================================== the file's own dangers

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

@pytest.mark.parametrize("command", ["provision", "rotate-secret"])
def test_symlink_repointed_during_the_run_redirects_nothing(emulator: Any, tmp_path: Path, command: str) -> None:
    """Whoever controls Cypht's folder re-points `.env` at another file while Graph is called: the run
    writes the file it read (resolved once), never the new link target."""
    folder = tmp_path / "cypht"
    folder.mkdir()
    real = folder / "real.env"
    real.write_text(USER_LINES)
    link = folder / ".env"
    link.symlink_to("real.env")
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
    # Secrets are named for the .env's real path, which the re-pointed link now changes for the
    # clean-up step (operations/secrets.env_tag): the superseded one is not judged here.
    invariant.check(emulator, before, run, command=command, after_success=False, require_changed=True)
    _secret_works(emulator, real)


def test_root_refuses_a_symlink_another_user_owns(emulator: Any, tmp_path: Path) -> None:
    _needs_root()
    folder = tmp_path / "cypht"
    folder.mkdir()
    real = folder / "real.env"
    real.write_text(USER_LINES)
    link = folder / ".env"
    link.symlink_to("real.env")
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


def test_owner_who_cannot_keep_the_group_is_refused_before_any_request(
    emulator: Any, shared: Path,
) -> None:
    """nobody owns .env, www-data's group reads it; nobody is not in that group, so the rewritten file
    could not keep it (fchown EPERM): refused before signing in, not after the secret exists."""
    _needs_root()
    folder = shared / "cypht"
    seed_provisioned(emulator, folder / ".env")
    env_file = folder / ".env"
    os.chown(folder, NOBODY, NOBODY)
    os.chown(env_file, NOBODY, WWW_DATA)
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
    _needs_root()
    folder = shared / "cypht"
    seed_provisioned(emulator, folder / ".env")
    env_file = folder / ".env"
    os.chown(folder, NOBODY, NOBODY)
    os.chown(env_file, NOBODY, NOBODY)
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
