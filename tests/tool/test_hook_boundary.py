"""Deploy hooks at the boundary between the operator (root) and the web server user (www-data, the
attacker, played with setpriv): what runs as root is exactly the file the operator chose; the time-out
holds against a hook's escaped children; a failed hook stays pending until hooks succeed; and a hook's
output never shows a secret, on any path."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.tool.conftest import REPO, Cli, graph_requests
from tests.tool.test_lifecycle import app_of, rotate, secret_works
from tests.tool.test_provision import provision, read_env
from tests.tool.webhooks import WebhookReceiver

WWW = ["setpriv", "--reuid=www-data", "--regid=www-data", "--clear-groups"]
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="the attacks are made on a root run (CI runs as root)")


def www() -> pwd.struct_passwd:
    return pwd.getpwnam("www-data")


def as_www_data(script: str) -> None:
    subprocess.run([*WWW, "sh", "-c", script], check=True, cwd="/")


def www_folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, www().pw_uid, www().pw_gid)
    path.chmod(0o755)
    return path


def hook_file(path: Path, body: str, *, mode: int = 0o755) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(mode)
    return path


@pytest.fixture
def provisioned(cli: Cli, env_file: Path) -> dict[str, Any]:
    env_file.parent.mkdir()
    r = provision(cli, env_file, "--secret-lifetime", "100d")
    assert r.returncode == 0, r
    return dict(r.json)


@pytest.fixture
def world() -> Iterator[Path]:
    """A folder www-data can reach (pytest's own is root's alone): where the attacker's files go."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="cypht-azure-hooks-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def marker(world: Path) -> Path:
    path = world / "shared" / "ran"
    path.parent.mkdir()
    path.parent.chmod(0o777)
    return path


# ---- what runs as root is what the operator chose (issue 18, rule 4) -------------------------------------


@root_only
def test_a_relative_hook_runs_from_the_operators_folder_never_the_env_folder(
        cli: Cli, emulator: Any, world: Path, tmp_path: Path, marker: Path) -> None:
    env_file = www_folder(world / "cypht") / ".env"
    assert provision(cli, env_file).returncode == 0
    os.chown(env_file, www().pw_uid, www().pw_gid)
    ops = tmp_path / "ops"
    hook_file(ops / "reload.sh", f"echo operator >> {marker}")
    # www-data drops its own reload.sh next to .env, where hooks used to run
    as_www_data(f"printf '#!/bin/sh\\necho attacker >> {marker}\\n' > {env_file.parent}/reload.sh; "
                f"chmod 755 {env_file.parent}/reload.sh")
    r = cli("rotate-secret", "--env-file", str(env_file), "--deploy-hook", "./reload.sh --now", "--json", cwd=ops)
    assert r.returncode == 0, r
    assert marker.read_text() == "operator\n"
    assert [h["name"] for h in r.json["deploy_hooks"]] == ["./reload.sh --now"]


ATTACKS = ["flag-file-of-www-data", "flag-root-file-in-a-www-data-folder", "flag-group-writable-folder",
           "flag-through-a-link-to-a-www-data-folder", "folder-hooks-under-a-www-data-folder"]


@root_only
@pytest.mark.parametrize("attack", ATTACKS)
def test_root_refuses_a_hook_another_user_can_change_before_any_graph_call(
        cli: Cli, emulator: Any, env_file: Path, provisioned: dict[str, Any], tmp_path: Path, marker: Path,
        attack: str, world: Path) -> None:
    attacker = www_folder(world / "www")
    extra: list[str] = []
    env: dict[str, str] = {}
    if attack == "flag-file-of-www-data":
        as_www_data(f"printf '#!/bin/sh\\necho ran >> {marker}\\n' > {attacker}/reload.sh; chmod 755 {attacker}/reload.sh")
        extra = ["--deploy-hook", f"{attacker}/reload.sh"]
    elif attack == "flag-root-file-in-a-www-data-folder":   # www-data can rename another file over it
        hook_file(attacker / "reload.sh", f"echo ran >> {marker}")
        extra = ["--deploy-hook", f"{attacker}/reload.sh"]
    elif attack == "flag-group-writable-folder":
        shared = tmp_path / "shared-bin"
        hook_file(shared / "reload.sh", f"echo ran >> {marker}")
        os.chown(shared, 0, www().pw_gid)
        shared.chmod(0o775)
        extra = ["--deploy-hook", f"{shared}/reload.sh"]
    elif attack == "flag-through-a-link-to-a-www-data-folder":
        hook_file(attacker / "reload.sh", f"echo ran >> {marker}")
        (tmp_path / "ops").mkdir()
        (tmp_path / "ops" / "bin").symlink_to(attacker)
        extra = ["--deploy-hook", f"{tmp_path}/ops/bin/reload.sh"]
    elif attack == "folder-hooks-under-a-www-data-folder":
        folder = attacker / "deploy-hooks.d"
        folder.mkdir()                       # root's folder and file, inside a folder www-data owns
        hook_file(folder / "50-reload", f"echo ran >> {marker}")
        env = {"CYPHT_AZURE_HOOKS_DIR": str(folder)}
    before = env_file.read_bytes()
    emulator.clear_log()
    r = cli("rotate-secret", "--env-file", str(env_file), *extra, env=env)
    assert r.returncode == 2, r
    assert "would run as root" in r.stderr and ("(www-data)" in r.stderr or "other users" in r.stderr), r.stderr
    assert graph_requests(emulator) == [], "refused before any Graph call"
    assert env_file.read_bytes() == before and not marker.exists()


@root_only
def test_the_hooks_folder_is_the_same_for_root_and_for_a_scheduled_run_as_www_data(
        emulator: Any, cli_env: dict[str, str], tmp_path: Path, marker: Path, world: Path) -> None:
    """/etc/cypht-azure/deploy-hooks.d/ is the hooks folder of every run, whoever runs it (seen through a
    private mount namespace with /etc overlaid, so the machine's /etc is never touched)."""
    site = www_folder(world / "site")
    env_file = site / ".env"
    home = www_folder(world / "www-home")
    ca = world / "ca.pem"
    shutil.copy(cli_env["CYPHT_AZURE_CA_FILE"], ca)
    ca.chmod(0o644)
    hook = hook_file(tmp_path / "50-mark", f'id -un >> {marker}')
    env = {k: v for k, v in cli_env.items() if k not in ("CYPHT_AZURE_HOOKS_DIR", "CYPHT_AZURE_RECORD_DIR")} | {
        "CYPHT_AZURE_CA_FILE": str(ca), "HOME": str(home), "XDG_STATE_HOME": str(home / "state"),
        "XDG_CONFIG_HOME": str(home / "config"), "CYPHT_AZURE_LOG_DIR": str(home / "log"), "PYTHONPATH": str(REPO)}
    upper = tmp_path / "overlay"
    upper.mkdir()

    def run(*args: str, user: list[str]) -> subprocess.CompletedProcess[str]:
        script = ('mount -t tmpfs tmpfs "$1" && mkdir "$1/u" "$1/w" && '
                  'mount -t overlay overlay -o lowerdir=/etc,upperdir="$1/u",workdir="$1/w" /etc && '
                  'mkdir -p /etc/cypht-azure/deploy-hooks.d && cp "$2" /etc/cypht-azure/deploy-hooks.d/50-mark && '
                  'chmod 755 /etc/cypht-azure/deploy-hooks.d/50-mark && shift 2 && exec "$@"')
        return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", str(upper),
                               str(hook), *user, sys.executable, "-m", "cypht_azure", *args],
                              env=env, cwd=str(site), capture_output=True, text=True, timeout=120)

    r = run("provision", "--url", "https://mail.example.com", "--env-file", str(env_file), "--json", user=WWW)
    assert r.returncode == 0, r.stderr
    assert run("rotate-secret", "--env-file", str(env_file), user=[]).returncode == 0
    assert run("rotate-secret", "--env-file", str(env_file), user=WWW).returncode == 0
    assert marker.read_text().split() == ["www-data", "root", "www-data"]
    assert not Path("/etc/cypht-azure").exists()


# ---- the time-out holds (issue 17, item 8) ---------------------------------------------------------------


def _sleepers(tag: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[:2] == [b"sleep", tag.encode()]:
                found.append(int(entry.name))
    return found


@pytest.fixture
def sleep_tag() -> Iterator[str]:
    """A sleep length no other process uses, so the test finds (and ends) exactly its own sleepers."""
    tag = f"{900 + os.getpid() % 97}.{time.monotonic_ns() % 10**6}"
    yield tag
    for pid in _sleepers(tag):
        os.kill(pid, signal.SIGKILL)


def test_a_timed_out_hook_is_killed_with_its_group_and_an_escaped_child_does_not_hold_the_run(
        cli: Cli, emulator: Any, env_file: Path, provisioned: dict[str, Any], sleep_tag: str) -> None:
    hook = f"setsid sleep {sleep_tag} & sleep {sleep_tag}"
    started = time.monotonic()
    r = cli("rotate-secret", "--env-file", str(env_file), "--json", "--deploy-hook", hook,
            "--deploy-hook-timeout", "1", timeout=40)
    assert r.returncode == 8, r
    assert time.monotonic() - started < 30
    assert r.json["deploy_hooks"][0]["timed_out"] is True
    assert len(_sleepers(sleep_tag)) == 1, "the sleep in the hook's group is killed; only the escaped one lives"
    again = cli("status", "--env-file", str(env_file), "--json", timeout=40)   # the lock is free
    assert again.returncode in (0, 1), again


def test_a_hook_that_exited_0_is_not_timed_out_whatever_it_left_behind(
        cli: Cli, emulator: Any, env_file: Path, provisioned: dict[str, Any], sleep_tag: str) -> None:
    r = cli("rotate-secret", "--env-file", str(env_file), "--json", "--deploy-hook",
            f"setsid sleep {sleep_tag} & echo reloaded", "--deploy-hook-timeout", "3", timeout=40)
    assert r.returncode == 0, r
    [run] = r.json["deploy_hooks"]
    assert run["ok"] is True and run["timed_out"] is False and run["exit_code"] == 0
    assert r.json["removed_key_ids"] == [provisioned["secret_key_id"]]


# ---- a failed hook stays pending until a run with hooks succeeds ------------------------------------------


def test_a_pending_hook_is_not_dropped_by_a_run_without_hooks(
        cli: Cli, emulator: Any, env_file: Path, provisioned: dict[str, Any], tmp_path: Path) -> None:
    client_id, old_key = provisioned["client_id"], provisioned["secret_key_id"]
    # A hook of the hooks folder fails, then leaves the folder: the next run has no hook at all (a
    # --deploy-hook would be kept in the installation record and run again, as it should).
    folder = {"CYPHT_AZURE_HOOKS_DIR": str(tmp_path / "deploy-hooks.d")}
    failing = hook_file(tmp_path / "deploy-hooks.d" / "10-reload", "exit 1")
    failed = cli("rotate-secret", "--env-file", str(env_file), "--json", env=folder)
    assert failed.returncode == 8, failed
    new_key = failed.json["new_key_id"]
    failing.unlink()

    bare = cli("rotate-secret", "--env-file", str(env_file), "--json", env=folder)
    assert bare.returncode == 8, bare
    assert "no deploy hook is configured for this run" in bare.stderr and "--skip-deploy-hooks" in bare.stderr
    assert {c["keyId"] for c in app_of(emulator, client_id)["passwordCredentials"]} == {old_key, new_key}
    assert read_env(env_file)["CYPHT_AZURE_DEPLOY_PENDING"] == new_key

    conflicting = rotate(cli, env_file, "--skip-deploy-hooks", "--deploy-hook", "true")
    assert conflicting.returncode == 2, conflicting

    skipped = rotate(cli, env_file, "--skip-deploy-hooks")
    assert skipped.returncode == 0, skipped
    assert skipped.json["removed_key_ids"] == [old_key]
    assert {c["keyId"] for c in app_of(emulator, client_id)["passwordCredentials"]} == {new_key}
    assert "CYPHT_AZURE_DEPLOY_PENDING" not in read_env(env_file)
    assert secret_works(emulator, client_id, read_env(env_file)["OUTLOOK_CLIENT_SECRET"])


# ---- hook output never shows a secret (issue 18, rule 6) ------------------------------------------------


def test_hook_output_is_redacted_on_every_path(
        cli: Cli, emulator: Any, env_file: Path, provisioned: dict[str, Any], tmp_path: Path, home: Path,
        cli_env: dict[str, str]) -> None:
    receiver = WebhookReceiver()
    try:
        old_secret = read_env(env_file)["OUTLOOK_CLIENT_SECRET"]
        admin = cli_env["AZURE_CLIENT_SECRET"]
        known = tmp_path / "known"   # what a careless hook could print besides .env: the old secret, the admin's
        known.write_text(f"old={old_secret}\nadmin={admin}\n")
        hook = hook_file(tmp_path / "ops" / "noisy", f'cat "$CYPHT_AZURE_ENV_FILE" {known}; exit 5')
        first = rotate(cli, env_file, "--deploy-hook", str(hook), "--notify", receiver.url)
        assert first.returncode == 8, first
        retry = rotate(cli, env_file, "--deploy-hook", str(hook), "--notify", receiver.url)
        assert retry.returncode == 8, retry
        human = cli("rotate-secret", "--env-file", str(env_file), "--deploy-hook", str(hook))
        assert human.returncode == 8, human
        dry = rotate(cli, env_file, "--dry-run", "--run-deploy-hooks", "--deploy-hook", str(hook))
        new_secret = read_env(env_file)["OUTLOOK_CLIENT_SECRET"]
        assert "<redacted>" in first.stderr and "<redacted>" in retry.stderr and "<redacted>" in human.stderr
        audit = (home / ".state" / "cypht-azure" / "audit.log").read_text()
        # The first run read the old secret from .env and made the new one; a retry knows the secret .env
        # holds (the old one is in no file any more); every run knows the admin's.
        shown = {"first run": (first.stdout + first.stderr, {"old": old_secret}),
                 "retry": (retry.stdout + retry.stderr, {}), "retry, human": (human.stdout + human.stderr, {}),
                 "dry run": (dry.stdout + dry.stderr, {}), "audit log": (audit, {"old": old_secret}),
                 "webhooks": (json.dumps(receiver.bodies), {"old": old_secret})}
        for where, (text, more) in shown.items():
            for name, value in ({"new": new_secret, "admin": admin} | more).items():
                assert value not in text, f"the {name} secret is shown in the {where}"
        assert "old=<redacted>" in first.stderr and "admin=<redacted>" in first.stderr, "shown, minus the secrets"
    finally:
        receiver.stop()
