"""The admin's journey, second pass (issue 19): the traps and messages an admin met, through the real
CLI against the emulator. Tests are named by the item's number in the issue."""

from __future__ import annotations

import os
import pty
import re
import select
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.tool.conftest import Cli, cypht_apps, writes

URL = "https://mail.example.org"
TYPO = "https://mail.exmaple.org"


def read_env(path: Path) -> dict[str, str]:
    from cypht_azure import envdisk

    doc = envdisk.load(path)
    return {k: v for k in sorted(doc.keys()) if (v := doc.get(k)) is not None}


def provision(cli: Cli, env_file: Path, *extra: str, url: str = URL) -> Any:
    env_file.parent.mkdir(parents=True, exist_ok=True)
    return cli("provision", "--url", url, "--env-file", str(env_file), "--no-verify", *extra)


def on_terminal(args: list[str], env: dict[str, str], cwd: Path, answer: bytes | None = None,
                ask: bytes = b"Go ahead?", timeout: float = 90) -> tuple[int, bytes]:
    """Run the CLI with stdin, stdout and stderr on a pseudo-terminal; answer its question if asked."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec at once
        os.chdir(cwd)
        os.execve(sys.executable, [sys.executable, "-m", "cypht_azure", *args], env)
    out, answered, deadline = b"", False, time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
        if answer is not None and not answered and ask in out:
            os.write(fd, answer)
            answered = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out


def screen(raw: bytes) -> list[str]:
    """The lines a terminal shows for `raw`: carriage returns and erase-line honoured, colours dropped."""
    lines, line, col = [], [], 0
    text = re.sub(r"\x1b\[[0-9;]*m", "", raw.decode("utf-8", "replace"))
    i = 0
    while i < len(text):
        if text.startswith("\x1b[K", i):
            del line[col:]
            i += 3
            continue
        ch = text[i]
        if ch == "\r":
            col = 0
        elif ch == "\n":
            lines.append("".join(line))
            line, col = [], 0
        else:
            if col < len(line):
                line[col] = ch
            else:
                line.append(ch)
            col += 1
        i += 1
    lines.append("".join(line))
    return lines


# 2. A changed --url on an existing .env needs confirmation ---------------------------------------

def test_2_changed_url_is_shown_old_to_new_and_needs_yes_without_a_terminal(
    cli: Cli, emulator: Any, env_file: Path,
) -> None:
    assert provision(cli, env_file).returncode == 0
    before = env_file.read_bytes()
    dry = provision(cli, env_file, "--dry-run", url=TYPO)
    assert dry.returncode == 0, dry
    for key in ("OUTLOOK_CLIENT_URI", "OFFICE365_CLIENT_URI"):
        assert f"{key} {URL}/ → {TYPO}/" in dry.stdout, dry
    emulator.clear_log()
    refused = provision(cli, env_file, url=TYPO)
    assert refused.returncode == 7, refused
    assert f"{URL}/" in refused.stderr and f"{TYPO}/" in refused.stderr and "--yes" in refused.stderr
    assert env_file.read_bytes() == before and writes(emulator) == []
    [app] = cypht_apps(emulator)
    assert app["web"]["redirectUris"] == [f"{URL}/"]
    done = provision(cli, env_file, "--yes", url=TYPO)
    assert done.returncode == 0, done
    assert read_env(env_file)["OUTLOOK_CLIENT_URI"] == f"{TYPO}/"
    same = provision(cli, env_file, url=TYPO)  # the URL it now has: nothing to confirm
    assert same.returncode == 0, same


def test_2_changed_url_is_asked_on_a_terminal_and_no_changes_nothing(
    cli_env: dict[str, str], cli: Cli, emulator: Any, env_file: Path, tmp_path: Path,
) -> None:
    assert provision(cli, env_file).returncode == 0
    before = env_file.read_bytes()
    code, raw = on_terminal(["provision", "--url", TYPO, "--env-file", str(env_file), "--no-verify"],
                            cli_env, tmp_path, answer=b"n\n")
    shown = screen(raw)
    assert code == 7, shown
    assert any(f"OUTLOOK_CLIENT_URI {URL}/ → {TYPO}/" in line for line in shown), shown
    assert env_file.read_bytes() == before


# 10. Messages: a reason said once, a hook's output on its own lines, progress erased before a plan --

def test_10_not_due_says_it_once(cli: Cli, env_file: Path) -> None:
    assert provision(cli, env_file).returncode == 0
    r = cli("rotate-secret", "--env-file", str(env_file), "--when-due")
    assert r.returncode == 0, r
    assert r.stdout.startswith("Not due: the secret in ") and r.stdout.count("due") == 3, r.stdout
    assert "is not due" not in r.stdout, r.stdout


def test_10_hook_output_stays_on_its_own_lines(cli: Cli, env_file: Path) -> None:
    assert provision(cli, env_file).returncode == 0
    r = cli("rotate-secret", "--env-file", str(env_file),
            "--deploy-hook", "echo uh-oh | tr - _; echo second-line | tr - _; exit 1")
    assert r.returncode == 8, r
    lines = r.stderr.splitlines()
    start = lines.index("Its output:")
    assert lines[start + 1:start + 3] == ["  | uh_oh", "  | second_line"], r.stderr
    assert "Done and kept: " in "\n".join(lines[:start]), r.stderr  # what was done: before the output
    assert not any("uh_oh" in line for line in lines[:start] + lines[start + 3:]), r.stderr


def test_10_progress_line_is_erased_before_the_plan_is_asked(
    cli_env: dict[str, str], cli: Cli, env_file: Path, tmp_path: Path,
) -> None:
    assert provision(cli, env_file).returncode == 0
    code, raw = on_terminal(["deprovision", "--env-file", str(env_file)], cli_env, tmp_path, answer=b"n\n")
    shown = [line for line in screen(raw) if line.strip()]
    assert code == 7, shown
    assert shown[0].startswith("- Delete (restorable for 30 days) the app registration"), shown
    assert not any("…" in line for line in shown), shown


# 9. Every suggested command runs as printed ------------------------------------------------------------

SUGGESTED = re.compile(r"`(cypht-azure [^`]+)`|^(?:Next|Undo within 30 days): (cypht-azure .+)$", re.M)


def suggested(text: str) -> list[str]:
    return [a or b for a, b in SUGGESTED.findall(text)]


def run_as_printed(cli: Cli, command: str, *, quiet: bool = True) -> Any:
    """The command exactly as printed (plus --no-verify for provision, to keep the test fast)."""
    import shlex

    words = shlex.split(command)
    assert words[0] == "cypht-azure" and "<" not in command, command
    extra = ["--no-verify"] if words[1] == "provision" else ["--quiet"] if quiet else []
    return cli(*words[1:], *extra)


def test_9_restore_next_runs_as_printed(cli: Cli, env_file: Path) -> None:
    assert provision(cli, env_file, url=f"{URL}/cypht").returncode == 0
    gone = cli("deprovision", "--env-file", str(env_file), "--yes")
    assert gone.returncode == 0, gone
    [undo] = [c for c in suggested(gone.stdout) if " restore " in c]
    restored = run_as_printed(cli, undo, quiet=False)
    assert restored.returncode == 0, restored
    [after] = [c for c in suggested(restored.stdout) if " provision " in c]
    assert "--env-file" in after and f"--url {URL}/cypht/" in after, after
    done = run_as_printed(cli, after)
    assert done.returncode == 0, done
    assert read_env(env_file)["OUTLOOK_CLIENT_URI"] == f"{URL}/cypht/" and read_env(env_file)["OUTLOOK_CLIENT_SECRET"]


def test_9_doctor_fix_for_an_unconfigured_provider_runs_as_printed(cli: Cli, env_file: Path) -> None:
    assert provision(cli, env_file, "--provider", "outlook").returncode == 0
    with env_file.open("a") as f:
        f.write("OFFICE365_CLIENT_ID=\nOFFICE365_CLIENT_SECRET=\n")  # Cypht's template block, left empty
    doc = cli("doctor", "--env-file", str(env_file))
    fixes = [c for c in suggested(doc.stdout) if " provision " in c]
    assert fixes and all("--url" in c for c in fixes), doc
    for command in fixes:
        done = run_as_printed(cli, command)
        assert done.returncode == 0, done
    assert read_env(env_file)["OFFICE365_CLIENT_ID"] == read_env(env_file)["OUTLOOK_CLIENT_ID"]


def test_9_status_url_fixes_name_the_url_given(cli: Cli, env_file: Path) -> None:
    env_file.parent.mkdir()
    env_file.write_text("OUTLOOK_CLIENT_ID=\nOUTLOOK_CLIENT_SECRET=\nOFFICE365_CLIENT_ID=\nOFFICE365_CLIENT_SECRET=\n")
    shown = cli("status", "--url", URL, "--env-file", str(env_file))
    fixes = [c for c in suggested(shown.stdout) if " provision " in c]
    assert fixes, shown
    assert all(f"--url {URL}" in c and "Cypht's URL" not in c for c in fixes), shown
    for command in dict.fromkeys(fixes):
        done = run_as_printed(cli, command)
        assert done.returncode == 0, done
    assert read_env(env_file)["OUTLOOK_CLIENT_URI"] == f"{URL}/"


# 4. A dry run runs every pre-check the real run does ---------------------------------------------------

def _seeded(emulator: Any, env_file: Path, command: str) -> None:
    from tests.guarantees.harness import USER_LINES, seed_provisioned

    if command == "provision":
        env_file.parent.mkdir(parents=True)
        env_file.write_text(USER_LINES)
    else:
        seed_provisioned(emulator, env_file)


@pytest.mark.parametrize("command", ["provision", "rotate-secret", "deprovision"])
def test_4_dry_run_refuses_a_read_only_env_as_the_real_run_does(
    emulator: Any, tmp_path: Path, command: str,
) -> None:
    from tests.guarantees.harness import base_env, command_args, run_cli

    env_file = tmp_path / "cypht" / ".env"
    _seeded(emulator, env_file, command)
    env_file.chmod(0o444)
    before = env_file.read_bytes()
    env = base_env(emulator, tmp_path / "home")
    emulator.clear_log()
    dry = run_cli(env, *command_args(command, env_file, "--dry-run"))
    real = run_cli(env, *command_args(command, env_file))
    assert (dry.returncode, real.returncode) == (2, 2), f"{dry}\n{real}"
    assert "read-only (mode 0444)" in dry.stderr and dry.stderr == real.stderr, f"{dry}\n{real}"
    assert env_file.read_bytes() == before and emulator.request_log == []
    assert sorted(os.listdir(env_file.parent)) == [".env"]


# 5. A file of another user: who owns it and whom to run as ----------------------------------------------

@pytest.mark.parametrize("command", ["provision", "rotate-secret"])
def test_5_file_of_another_user_names_its_owner(emulator: Any, command: str) -> None:
    import pwd
    import shutil
    import tempfile

    from tests.guarantees.harness import command_args, run_cli
    from tests.guarantees.test_disk import AS_NOBODY, NOBODY, nobody_env

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("running as another user needs root and setpriv")
    www = pwd.getpwnam("www-data")
    shared = Path(tempfile.mkdtemp(prefix="cypht-azure-owner-"))
    try:
        shared.chmod(0o755)
        shutil.copy(emulator.ca_file, shared / "ca.pem")
        (shared / "ca.pem").chmod(0o644)
        (shared / "home").mkdir(mode=0o777)
        env_file = shared / "cypht" / ".env"
        _seeded(emulator, env_file, command)
        os.chown(env_file.parent, NOBODY, NOBODY)  # the folder lets nobody create files: only the file is not theirs
        os.chown(env_file, www.pw_uid, www.pw_gid)
        env_file.chmod(0o644)
        before = env_file.read_bytes()
        emulator.clear_log()
        for extra in ("--dry-run", None):
            run = run_cli(nobody_env(emulator, shared), *command_args(command, env_file, *([extra] if extra else [])),
                          prefix=AS_NOBODY)
            assert run.returncode == 2, run
            assert f"belongs to user id {www.pw_uid} (www-data) (mode 0644)" in run.stderr, run
            assert "sudo -u www-data cypht-azure" in run.stderr and "nobody" in run.stderr, run
            assert "read-only" not in run.stderr and "chmod" not in run.stderr, run
        assert env_file.read_bytes() == before and emulator.request_log == []
    finally:
        shutil.rmtree(shared, ignore_errors=True)


# 8. deprovision gives the file back in the template's shape -------------------------------------------

LIVE = "https://login.live.com/oauth20_"
TEMPLATE = (  # Cypht's .env.example blocks, one with the comment an admin wrote over it
    "APP_NAME=Cypht\n\n"
    "# Outlook.com\nOUTLOOK_CLIENT_ID=\nOUTLOOK_CLIENT_SECRET=\nOUTLOOK_CLIENT_URI=http://localhost/?page=home\n"
    f"OUTLOOK_AUTH_URI={LIVE}authorize.srf\nOUTLOOK_TOKEN_URI={LIVE}token.srf\nOUTLOOK_REFRESH_URI={LIVE}token.srf\n\n"
    "#office365\nOFFICE365_CLIENT_ID=\nOFFICE365_CLIENT_SECRET=\nOFFICE365_CLIENT_URI=http://localhost/?page=home\n"
    f"OFFICE365_AUTH_URI={LIVE}authorize.srf\nOFFICE365_TOKEN_URI={LIVE}token.srf\n"
    f"OFFICE365_REFRESH_URI={LIVE}token.srf\n\nOTHER=kept\n"
)


def test_8_deprovision_keeps_the_template_lines_it_filled_empty(cli: Cli, env_file: Path) -> None:
    env_file.parent.mkdir()
    env_file.write_text(TEMPLATE)
    assert provision(cli, env_file).returncode == 0
    gone = cli("deprovision", "--env-file", str(env_file), "--yes")
    assert gone.returncode == 0, gone
    expected = TEMPLATE.replace("_CLIENT_URI=http://localhost/?page=home", "_CLIENT_URI=")
    text = env_file.read_text()
    cut = text.index("# Outlook and Office365 OAuth (managed by cypht-azure)")  # the tool's own settings stay
    assert text[:cut].rstrip("\n") + "\n" == expected, text
    assert not any(line.startswith(("OUTLOOK_", "OFFICE365_")) for line in text[cut:].splitlines()), text
    again = provision(cli, env_file)  # and provision fills the same lines again
    assert again.returncode == 0, again
    assert "# Outlook.com\nOUTLOOK_CLIENT_ID='" in env_file.read_text()


# 3. status checks the secret by default, and reports keys the environment shadows ----------------------

def test_3_status_refuses_a_wrong_secret_by_default(cli: Cli, emulator: Any, env_file: Path) -> None:
    assert provision(cli, env_file).returncode == 0
    text = env_file.read_text()
    secret = read_env(env_file)["OUTLOOK_CLIENT_SECRET"]
    env_file.write_text(text.replace(secret, "Wr0ng~" + secret[6:]))
    emulator.clear_log()
    shown = cli("status", "--env-file", str(env_file), "--json")
    assert shown.returncode == 0, shown
    assert "secret-rejected" in [f["code"] for f in shown.json["findings"]], shown
    assert shown.json["secret_verified"] is False
    assert writes(emulator) == []  # checking changes nothing
    from tests.tool.conftest import token_requests

    tries = [e for e in token_requests(emulator) if (e.client_id or "").lower() == read_env(env_file)["OUTLOOK_CLIENT_ID"]]
    assert len(tries) == 1, tries  # one request
    alert = cli("status", "--env-file", str(env_file), "--fail-within", "14d")
    assert alert.returncode == 6 and "No problems found" not in alert.stdout, alert
    skipped = cli("status", "--env-file", str(env_file), "--no-verify-secret", "--json")
    assert skipped.returncode == 0 and skipped.json["secret_verified"] is None, skipped
    assert "secret-rejected" not in [f["code"] for f in skipped.json["findings"]]


def test_3_status_reports_keys_shadowed_by_the_environment(cli: Cli, env_file: Path) -> None:
    assert provision(cli, env_file).returncode == 0
    client_id = read_env(env_file)["OUTLOOK_CLIENT_ID"]
    shown = cli("status", "--env-file", str(env_file), "--json",
                env={"OUTLOOK_CLIENT_ID": "11111111-2222-3333-4444-555555555555", "OFFICE365_CLIENT_ID": client_id})
    assert shown.returncode == 0, shown
    found = {(f["code"], f["message"].split()[0]) for f in shown.json["findings"]}
    assert ("env-shadowed", "OUTLOOK_CLIENT_ID") in found, shown
    assert ("env-shadowed-same", "OFFICE365_CLIENT_ID") in found, shown
    text = cli("status", "--env-file", str(env_file), env={"OUTLOOK_CLIENT_ID": "11111111-2222-3333-4444-555555555555"})
    assert "No problems found" not in text.stdout and "env-shadowed" in text.stdout, text


# 1. Two .env files for one URL never share one registration ---------------------------------------------

def test_1_second_installation_for_a_url_gets_its_own_registration(cli: Cli, emulator: Any, tmp_path: Path) -> None:
    first, second = tmp_path / "blue" / ".env", tmp_path / "green" / ".env"
    assert provision(cli, first).returncode == 0
    dry = provision(cli, second, "--dry-run")
    assert dry.returncode == 0 and "gets its own registration" in dry.stdout, dry
    assert len(cypht_apps(emulator)) == 1  # the dry run made nothing
    made = provision(cli, second)
    assert made.returncode == 0, made
    assert "gets its own registration" in made.stdout, made
    a, b = read_env(first), read_env(second)
    assert a["OUTLOOK_CLIENT_ID"] != b["OUTLOOK_CLIENT_ID"]
    apps = {app["appId"]: app for app in cypht_apps(emulator)}
    assert set(apps) == {a["OUTLOOK_CLIENT_ID"], b["OUTLOOK_CLIENT_ID"]}
    assert apps[b["OUTLOOK_CLIENT_ID"]]["uniqueName"].startswith(apps[a["OUTLOOK_CLIENT_ID"]]["uniqueName"] + "-")
    assert apps[b["OUTLOOK_CLIENT_ID"]]["web"]["redirectUris"] == [f"{URL}/"]
    again = provision(cli, second)  # idempotent: its own registration, nothing to do
    assert again.returncode == 0 and "Nothing to do" in again.stdout, again
    for env_file in (first, second, first, second):  # each rotates, again and again, under Entra's limit
        r = cli("rotate-secret", "--env-file", str(env_file), "--json")
        assert r.returncode == 0, r
    for env_file in (first, second):
        shown = cli("status", "--env-file", str(env_file), "--json")
        assert shown.returncode == 0 and shown.json["findings"] == [] and shown.json["secret_verified"], shown
    # The first installation, its client ID lines lost but its installation ID kept, finds its own again.
    kept = {k: v for k, v in read_env(first).items() if not k.startswith(("OUTLOOK_", "OFFICE365_"))}
    first.write_text("".join(f"{k}='{v}'\n" for k, v in kept.items()))
    back = provision(cli, first)
    assert back.returncode == 0 and "own registration" not in back.stdout, back
    assert read_env(first)["OUTLOOK_CLIENT_ID"] == a["OUTLOOK_CLIENT_ID"] and len(cypht_apps(emulator)) == 2
