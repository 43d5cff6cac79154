"""Deploy hooks: which run, in what order, with which environment, and how failures and timeouts end."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from cypht_azure.errors import InputError
from cypht_azure.operations.unattended import hooks
from cypht_azure.secret import Secret

SECRET = "Sx8Q~not-a-real-secret-but-one-we-track-0123456789"


def write_hook(folder: Path, name: str, body: str, mode: int = 0o755) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(mode)
    return path


def facts(tmp_path: Path) -> hooks.HookEnv:
    env_file = tmp_path / ".env"
    env_file.write_text(f"OUTLOOK_CLIENT_SECRET={SECRET}\n")
    return hooks.HookEnv(env_file, "11111111-2222-3333-4444-555555555555", "new-key",
                         ("old-1", "old-2"), "2027-12-01T00:00:00Z")


def test_folder_lists_executables_in_name_order_and_skips_backups(tmp_path: Path) -> None:
    folder = tmp_path / "deploy-hooks.d"
    for name in ["20-reload", "10-compose", "30-k8s~", "40-x.dpkg-old", "50-y.dpkg-dist", ".hidden",
                 "60-z.bak", "70-w.rpmnew"]:
        write_hook(folder, name, "true")
    write_hook(folder, "15-not-executable", "true", mode=0o644)
    (folder / "16-a-folder").mkdir()
    found, skipped = hooks.folder_hooks(folder)
    assert [h.name for h in found] == ["10-compose", "20-reload"]
    assert sorted(skipped) == sorted(["30-k8s~", "40-x.dpkg-old", "50-y.dpkg-dist", ".hidden", "60-z.bak",
                                      "70-w.rpmnew", "15-not-executable", "16-a-folder"])


def test_missing_folder_means_no_hooks(tmp_path: Path) -> None:
    assert hooks.folder_hooks(tmp_path / "nope") == ([], [])


def test_flags_first_then_folder_each_once(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    a = write_hook(folder, "10-a", "true")
    write_hook(folder, "20-b", "true")
    found = hooks.collect(["echo one", "echo one", str(a)], folder)
    assert [(h.source, h.name) for h in found] == [("flag", "echo one"), ("flag", str(a)), ("folder", "20-b")]


def test_default_folder_for_root_and_users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "HOME": str(tmp_path)}
    system = tmp_path / "etc" / "cypht-azure" / "deploy-hooks.d"   # /etc/cypht-azure/deploy-hooks.d, not there yet
    monkeypatch.setattr(hooks, "SYSTEM_HOOKS_DIR", system)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert hooks.default_hooks_dir(env) == system
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert hooks.default_hooks_dir(env) == tmp_path / "cfg" / "cypht-azure" / "deploy-hooks.d"
    assert hooks.default_hooks_dir({"HOME": str(tmp_path)}) == tmp_path / ".config" / "cypht-azure" / "deploy-hooks.d"
    assert hooks.default_hooks_dir({**env, "CYPHT_AZURE_HOOKS_DIR": "/x"}) == Path("/x")
    system.mkdir(parents=True)   # once root installed it, every user's run uses it
    assert hooks.default_hooks_dir(env) == system


@pytest.mark.parametrize(("command", "problem"), [
    ("no-such-program-anywhere --reload", "not an executable on PATH"),
    ("/nonexistent/bin/reload", "not an executable file"),
    ("echo 'unbalanced", "not a valid shell command line"),
    ("   ", "is empty"),
])
def test_bad_flag_hooks_are_refused_before_anything_runs(command: str, problem: str) -> None:
    with pytest.raises(InputError, match=problem):
        hooks.validate(hooks.flag_hooks([command]))


def test_flag_hooks_that_can_run_pass() -> None:
    hooks.validate(hooks.flag_hooks(["systemctl --version >/dev/null", "true", "X=1 env", "/bin/sh -c true"]))


def test_hook_writable_by_others_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    path = write_hook(folder, "10-a", "true", mode=0o777)
    path.chmod(0o777)
    with pytest.raises(InputError, match="can be changed by other users"):
        hooks.validate(hooks.collect([], folder), folder)
    path.chmod(0o755)
    hooks.validate(hooks.collect([], folder), folder)


def test_hook_sees_the_facts_and_the_secret_only_in_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    dump = tmp_path / "seen.json"
    write_hook(folder, "10-dump", f'python3 -c "import json, os; json.dump(dict(os.environ), open(\'{dump}\', \'w\'))"\n'
                                  'grep -q "^OUTLOOK_CLIENT_SECRET=" "$CYPHT_AZURE_ENV_FILE"')
    f = facts(tmp_path)
    parent = {**os.environ, "AZURE_CLIENT_SECRET": SECRET, "OUTLOOK_CLIENT_SECRET": SECRET,
              "CYPHT_AZURE_CLIENT_SECRET": SECRET, "LC_ALL": "C.UTF-8", "KUBECONFIG": "/k"}
    before = dict(os.environ)
    report = hooks.run_all(hooks.collect([], folder), f, environ=parent)
    assert os.environ == before
    assert report.ok, report.runs
    seen = json.loads(dump.read_text())
    assert {k: v for k, v in seen.items() if k.startswith("CYPHT_AZURE_")} == {
        "CYPHT_AZURE_ENV_FILE": str(f.env_file),
        "CYPHT_AZURE_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
        "CYPHT_AZURE_NEW_KEY_ID": "new-key",
        "CYPHT_AZURE_OLD_KEY_IDS": "old-1 old-2",
        "CYPHT_AZURE_EXPIRES": "2027-12-01T00:00:00Z",
    }
    assert SECRET not in json.dumps(seen)
    assert "AZURE_CLIENT_SECRET" not in seen and "OUTLOOK_CLIENT_SECRET" not in seen
    assert seen["LC_ALL"] == "C.UTF-8" and seen["KUBECONFIG"] == "/k"


def test_failure_stops_the_chain_and_output_is_kept_without_the_secret(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    marker = tmp_path / "third-ran"
    write_hook(folder, "10-ok", "echo fine")
    write_hook(folder, "20-fail", f'echo "reloading with {SECRET}"; echo broken >&2; exit 3')
    write_hook(folder, "30-never", f"touch {marker}")
    report = hooks.run_all(hooks.collect([], folder), facts(tmp_path), redact=[Secret(SECRET)])
    assert [(r.name, r.exit_code, r.ok) for r in report.runs] == [("10-ok", 0, True), ("20-fail", 3, False)]
    assert not report.ok and not marker.exists()
    assert "broken" in report.runs[1].output and SECRET not in report.runs[1].output
    assert report.runs[1].describe() == "20-fail: exit code 3"
    assert "output" not in report.runs[1].summary()


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    hook = hooks.flag_hooks([f"sleep 60 & echo $! > {pid_file}; wait"])[0]
    run = hooks.run_hook(hook, hooks.hook_environment(facts(tmp_path)), timeout=3)
    assert run.timed_out and run.exit_code is None and not run.ok
    assert run.seconds < 10
    child = int(pid_file.read_text())
    status = Path(f"/proc/{child}/status")
    # gone, or a zombie waiting for a parent that reaps (PID 1 in a container may not)
    assert not status.exists() or "State:\tZ" in status.read_text()


def test_a_hook_that_cannot_start_is_a_failure(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    path = folder / "10-bad-interpreter"
    folder.mkdir()
    path.write_text("#!/nonexistent/interpreter\n")
    path.chmod(stat.S_IRWXU)
    report = hooks.run_all(hooks.collect([], folder), facts(tmp_path))
    assert not report.ok and report.runs[0].error and "could not start" in report.runs[0].error
