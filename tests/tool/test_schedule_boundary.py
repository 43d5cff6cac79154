"""Issue 18 rules 2 and 3, issue 19 item 6: the schedule runs as root (certbot's model), never as the web
server user who owns .env; the tenant credential stays root's; no path reaches a unit or cron file
unchecked; and what `schedule` prints leads to the next step.

Root runs the CLI; `www-data` (played with setpriv) owns .env and its folder. The systemd units are
checked with `systemd-analyze verify` and read back the way systemd reads them; the cron line the way
cron and /bin/sh run it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tool.asroot import AS_WWW_DATA, in_namespace
from tests.tool.conftest import REPO, CliResult, clean_environ

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="plays root and www-data: needs root")


def run(home: Path, *args: str, prefix: list[str] | None = None, python: str = sys.executable,
        env: dict[str, str] | None = None) -> CliResult:
    proc = subprocess.run([*(prefix or []), python, "-m", "cypht_azure", *args], env=env or clean_environ(home),
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    return CliResult(args, proc.returncode, proc.stdout, proc.stderr)


def verify(*units: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", "verify", *map(str, units)], capture_output=True, text=True,
                          timeout=60)


@pytest.fixture(autouse=True)
def _tools() -> None:
    if shutil.which("systemd-analyze") is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is missing: .ci/run installs Debian's systemd package")
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")


def web_env(tmp_path: Path, name: str = "cypht") -> Path:
    """A .env owned by www-data in a folder www-data owns, as Cypht's is."""
    folder = tmp_path / "www" / name
    folder.mkdir(parents=True)
    env_file = folder / ".env"
    env_file.write_text("OUTLOOK_CLIENT_ID=x\n")
    for path in (tmp_path / "www", folder, env_file):
        os.chown(path, 33, 33)
    return env_file


# --- reading the files back as systemd and cron do (independently of the tool's own code) ---------------------

def systemd_words(value: str) -> list[str]:
    """systemd.syntax(7): words split at blanks, "…" and '…' quoting, backslash escapes; then the
    specifier `%%` and the variable `$$`, each standing for one character."""
    words, word, quote, i, started = [], "", None, 0, False
    while i < len(value):
        c = value[i]
        if c == "\\":
            word, i, started = word + value[i + 1], i + 2, True
            continue
        if quote:
            if c == quote:
                quote = None
            else:
                word += c
        elif c in "\"'":
            quote, started = c, True
        elif c in " \t":
            if started:
                words.append(word)
            word, started = "", False
        else:
            word, started = word + c, True
        i += 1
    if started:
        words.append(word)
    return [w.replace("%%", "%").replace("$$", "$") for w in words]


def directive(unit_text: str, name: str) -> str:
    [value] = re.findall(rf"^{name}=(.*)$", unit_text, re.M)
    return value


def cron_job(cron_text: str) -> tuple[str, str]:
    """(user, command as /bin/sh gets it) of the one job line: cron's `\\%` is a `%`."""
    [line] = [ln for ln in cron_text.splitlines() if ln and not ln.startswith("#") and "=" not in ln.split()[0]]
    fields = line.split(maxsplit=6)
    return fields[5], fields[6].replace("\\%", "%")


def argv_of_cron_command(command: str) -> list[str]:
    """Run the command with /bin/sh as cron would, with `exec PROGRAM` replaced by a printer of its argv."""
    probe = command.replace("; exec ", "; printargs ", 1)
    script = 'printargs() { for a in "$@"; do printf "%s\\0" "$a"; done; }; ' + probe
    done = subprocess.run(["sh", "-c", script], capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode().split("\0")[:-1]


AWKWARD = ["per%cent", "per%scent", 'dou"ble', "sin'gle", "sp ace", "dol$HOME", "dol$$lar", "naïve-ü",
           "back\\slash", "semi;colon", "trail\\", "both %$\"' \\ mixed"]


@pytest.mark.parametrize("name", AWKWARD)
def test_awkward_paths_are_escaped_for_systemd(home: Path, tmp_path: Path, name: str) -> None:
    env_file = web_env(tmp_path, name)
    creds = tmp_path / "etc" / name.strip() / "rotate.credentials"
    r = run(home, "schedule", "install", "--env-file", str(env_file), "--systemd-dir", str(tmp_path / "units"),
            "--credentials-file", str(creds), "--json")
    assert r.returncode == 0, r
    unit = r.json["schedules"][0]["unit"]
    service, timer = tmp_path / "units" / f"{unit}.service", tmp_path / "units" / f"{unit}.timer"
    checked = verify(service, timer)
    assert checked.returncode == 0, checked.stderr
    text = service.read_text()
    argv = systemd_words(directive(text, "ExecStart"))
    assert argv == [str(Path(sys.executable).parent / "cypht-azure"), "rotate-secret", "--when-due", "--env-file",
                    str(env_file)]
    assert directive(text, "EnvironmentFile").replace("%%", "%") == str(creds)
    assert len(text.splitlines()) == len(r.json["schedules"][0]["files"][0]["content"].splitlines()) == 16
    shown = run(home, "schedule", "show", "--systemd-dir", str(tmp_path / "units"), "--json")
    assert shown.json["schedules"][0]["env_file"] == str(env_file), shown


@pytest.mark.parametrize("name", [n for n in AWKWARD if "\\" not in n] + ["back\\slash"])
def test_awkward_paths_are_escaped_for_cron(home: Path, tmp_path: Path, name: str) -> None:
    env_file = web_env(tmp_path, name)
    cron = tmp_path / "cron.d" / "cypht-azure"
    creds = tmp_path / "etc" / name / "rotate.credentials"
    r = run(home, "schedule", "install", "--env-file", str(env_file), "--cron-file", str(cron),
            "--credentials-file", str(creds))
    assert r.returncode == 0, r
    user, command = cron_job(cron.read_text())
    assert user == "root"
    assert argv_of_cron_command(command) == [str(Path(sys.executable).parent / "cypht-azure"), "rotate-secret",
                                             "--when-due", "--env-file", str(env_file), "--quiet"]


@pytest.mark.parametrize("name", ["trail\\", "trail "])
def test_a_credentials_file_systemd_cannot_name_is_refused(home: Path, tmp_path: Path, name: str) -> None:
    """EnvironmentFile= takes the rest of the line: a final backslash continues it, blanks at either end
    are dropped. Such a name is refused, nothing written."""
    env_file = web_env(tmp_path)
    r = run(home, "schedule", "install", "--env-file", str(env_file), "--systemd-dir", str(tmp_path / "units"),
            "--credentials-file", str(tmp_path / "etc" / "c" / name))
    assert r.returncode == 2, r
    assert "systemd cannot name a file whose path starts or ends with white space or ends with a backslash" in r.stderr
    assert not (tmp_path / "units").exists() and not (tmp_path / "etc").exists()


def test_a_backslash_before_percent_is_refused_for_cron(home: Path, tmp_path: Path) -> None:
    """cron has no way to pass `\\%` on unchanged: refused, nothing written."""
    env_file = web_env(tmp_path, "a\\%b")
    cron = tmp_path / "cron.d" / "cypht-azure"
    r = run(home, "schedule", "install", "--env-file", str(env_file), "--cron-file", str(cron),
            "--credentials-file", str(tmp_path / "etc" / "c"))
    assert r.returncode == 2 and "backslash before a '%'" in r.stderr, r
    assert not cron.exists() and not (tmp_path / "etc").exists()


@pytest.mark.parametrize("kind", ["systemd", "cron"])
@pytest.mark.parametrize("where", ["env", "credentials"])
def test_a_newline_in_a_path_is_refused(home: Path, tmp_path: Path, kind: str, where: str) -> None:
    """A newline would start a directive (ExecStartPre=) or a cron line (`* * * * * root …`) of www-data's."""
    injected = "x\n* * * * * root touch /tmp/pwned\nExecStartPre=/bin/touch /tmp/pwned\n"
    env_file = web_env(tmp_path, injected if where == "env" else "cypht")
    creds = tmp_path / "etc" / (injected if where == "credentials" else "c") / "rotate.credentials"
    target = ["--systemd-dir", str(tmp_path / "units")] if kind == "systemd" else [
        "--cron-file", str(tmp_path / "cron.d" / "cypht-azure")]
    r = run(home, "schedule", "install", "--env-file", str(env_file), *target, "--credentials-file", str(creds))
    assert r.returncode == 2, r
    assert "contains control characters (\\n)" in r.stderr
    assert not (tmp_path / "units").exists() and not (tmp_path / "cron.d").exists()
    assert not (tmp_path / "etc").exists()


def test_a_dotted_cron_file_name_is_refused(home: Path, tmp_path: Path) -> None:
    """Debian's cron ignores /etc/cron.d files whose name holds a dot: the schedule would never run."""
    env_file = web_env(tmp_path)
    cron = tmp_path / "cron.d" / "cypht-azure.cron"
    r = run(home, "schedule", "install", "--env-file", str(env_file), "--cron-file", str(cron),
            "--credentials-file", str(tmp_path / "etc" / "c"))
    assert r.returncode == 2, r
    assert "cron ignores files in /etc/cron.d whose name has anything but letters" in r.stderr
    assert not cron.parent.exists()


def test_cron_outside_cron_d_says_to_install_it_there(home: Path, tmp_path: Path) -> None:
    env_file = web_env(tmp_path)
    cron = tmp_path / "cron.d" / "cypht-azure"
    r = run(home, "schedule", "install", "--env-file", str(env_file), "--cron-file", str(cron),
            "--credentials-file", str(tmp_path / "etc" / "c"), "--json")
    assert r.returncode == 0, r
    steps = r.json["schedules"][0]["next_steps"]
    assert not any("cron reads the file by itself" in s for s in steps)
    assert f"install -o root -g root -m 0644 {cron} /etc/cron.d/cypht-azure" in steps[-1]


def venv_copy(folder: Path) -> Path:
    """A copy of this test's venv entry points (its `python` and `cypht-azure`) in `folder`."""
    bin_dir = folder / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    real_venv = Path(sys.executable).parent.parent
    (bin_dir / "python").symlink_to(sys.executable)
    shutil.copy(real_venv / "pyvenv.cfg", folder / "venv" / "pyvenv.cfg")
    (folder / "venv" / "lib").symlink_to(real_venv / "lib")
    program = bin_dir / "cypht-azure"
    program.write_text(f"#!{bin_dir / 'python'}\nfrom cypht_azure.__main__ import main\nmain()\n")
    program.chmod(0o755)
    return bin_dir / "python"


def test_a_program_the_web_server_user_can_change_is_refused(home: Path, tmp_path: Path) -> None:
    """Root would run www-data's code: cypht-azure installed in a folder www-data owns is refused."""
    env_file = web_env(tmp_path)
    theirs = tmp_path / "www" / "tools"
    theirs.mkdir()
    python = venv_copy(theirs)
    os.chown(theirs, 33, 33)
    r = run(home, "schedule", "install", "--env-file", str(env_file), "--systemd-dir", str(tmp_path / "units"),
            "--credentials-file", str(tmp_path / "etc" / "c"), python=str(python))
    assert r.returncode == 2, r.stderr
    assert f"but {tmp_path / 'www'} is owned by www-data: another user could change what it runs" in r.stderr
    assert not (tmp_path / "units").exists()


def test_a_program_the_job_cannot_start_is_refused(home: Path, tmp_path: Path) -> None:
    """The program's interpreter is gone (a deleted venv): the job could never start."""
    env_file = web_env(tmp_path)
    ours = tmp_path / "opt"
    python = venv_copy(ours)
    program = python.parent / "cypht-azure"
    program.write_text(program.read_text().replace(str(python), str(ours / "gone" / "python"), 1))
    r = run(home, "schedule", "install", "--env-file", str(env_file), "--systemd-dir", str(tmp_path / "units"),
            "--credentials-file", str(tmp_path / "etc" / "c"), python=str(python))
    assert r.returncode == 2, r.stderr
    assert f"could not start {program}: {ours / 'gone' / 'python'} does not exist" in r.stderr


@pytest.mark.parametrize("case", ["folder-others-enter", "file-0644", "file-of-www-data"])
def test_credentials_others_could_read_are_refused(home: Path, tmp_path: Path, case: str) -> None:
    env_file = web_env(tmp_path)
    folder = tmp_path / "etc" / "creds"
    folder.mkdir(parents=True, mode=0o755 if case == "folder-others-enter" else 0o700)
    folder.chmod(0o755 if case == "folder-others-enter" else 0o700)
    creds = folder / "rotate.credentials"
    if case != "folder-others-enter":
        creds.write_text("AZURE_CLIENT_ID=x\n")
        creds.chmod(0o644 if case == "file-0644" else 0o600)
        if case == "file-of-www-data":
            os.chown(creds, 33, 33)
    r = run(home, "schedule", "install", "--env-file", str(env_file), "--systemd-dir", str(tmp_path / "units"),
            "--credentials-file", str(creds))
    assert r.returncode == 2, r
    expected = {"folder-others-enter": "can be entered by others (mode 0755", "file-0644": "(mode 0644, owner root)",
                "file-of-www-data": "(mode 0600, owner www-data)"}[case]
    assert expected in r.stderr
    assert not (tmp_path / "units").exists()


def test_the_header_names_the_command_that_removes_it(home: Path, tmp_path: Path) -> None:
    """Issue 19 item 6: the header's command, run as printed, finds and deletes the schedule."""
    env_file = web_env(tmp_path, "my site")
    units = tmp_path / "units"
    r = run(home, "schedule", "install", "--env-file", str(env_file), "--systemd-dir", str(units),
            "--credentials-file", str(tmp_path / "etc" / "c"), "--json")
    assert r.returncode == 0, r
    service = next(units.glob("*.service"))
    header = service.read_text().splitlines()[0]
    printed = header.split("delete it with: ", 1)[1]
    words = shlex.split(printed)
    assert words[:5] == ["cypht-azure", "schedule", "remove", "--env-file", str(env_file)]
    removed = run(home, *words[1:])
    assert removed.returncode == 0, removed
    assert not list(units.glob("*"))


def test_remove_disables_and_deletes_the_copies_in_etc_systemd_system(home: Path, tmp_path: Path) -> None:
    env_file = web_env(tmp_path)
    units = tmp_path / "units"
    ns = in_namespace(tmp_path)
    r = run(home, "schedule", "install", "--env-file", str(env_file), "--systemd-dir", str(units), "--json",
            prefix=ns)
    assert r.returncode == 0, r
    unit = r.json["schedules"][0]["unit"]
    steps = r.json["schedules"][0]["next_steps"]
    assert f"cp {units}/{unit}.service {units}/{unit}.timer /etc/systemd/system/" in steps[1]
    assert not any("&&" in s for s in steps)   # a failed start must not hide its log
    assert f"Try it now: systemctl start {unit}.service" in steps
    assert f"Read its log (also when the start failed): journalctl -u {unit}.service" in steps
    # what the admin does next (the copy, and `enable`'s link), inside the same /etc
    copied = subprocess.run([*ns, "sh", "-c", f"cp {units}/{unit}.service {units}/{unit}.timer /etc/systemd/system/ && "
                             f"mkdir -p /etc/systemd/system/timers.target.wants && ln -s /etc/systemd/system/{unit}.timer "
                             f"/etc/systemd/system/timers.target.wants/{unit}.timer"], capture_output=True, text=True)
    assert copied.returncode == 0, copied.stderr
    upper = tmp_path / "etc-upper" / "systemd" / "system"
    assert (upper / f"{unit}.service").exists() and (upper / "timers.target.wants" / f"{unit}.timer").is_symlink()

    planned = run(home, "schedule", "remove", "--env-file", str(env_file), "--systemd-dir", str(units),
                  "--dry-run", "--json", prefix=ns)
    assert planned.returncode == 0, planned
    assert planned.json["schedules"][0]["next_steps"][:2] == [f"systemctl disable --now {unit}.timer",
                                                               "systemctl daemon-reload"]
    removed = run(home, "schedule", "remove", "--env-file", str(env_file), "--systemd-dir", str(units), "--json",
                  prefix=ns)
    assert removed.returncode == 0, removed
    gone = {f["path"] for f in removed.json["schedules"][0]["files"]}
    assert f"/etc/systemd/system/{unit}.service" in gone and f"/etc/systemd/system/{unit}.timer" in gone
    assert f"/etc/systemd/system/timers.target.wants/{unit}.timer" in gone
    assert not (upper / f"{unit}.service").exists() and not (upper / "timers.target.wants" / f"{unit}.timer").exists()
    assert not list(units.glob("*"))


def test_schedule_install_help_is_its_own(home: Path) -> None:
    """Issue 19 item 10: `schedule install --help` prints install's help, not the group's `{action}`."""
    r = run(home, "schedule", "install", "--help")
    assert r.returncode == 0, r
    assert r.stdout.splitlines()[0].endswith(" schedule install [OPTIONS]")
    assert "--credentials-file" in r.stdout and "{action}" not in r.stdout and "install|show|remove" not in r.stdout


# --- issue 18's done-when: root's schedule for www-data's .env, run exactly as systemd runs it ----------------

def test_root_schedule_for_a_www_data_env_rotates_and_keeps_the_credential_from_www_data(
        home: Path, tmp_path: Path, emulator: object) -> None:
    from tests.guarantees.harness import seed_provisioned
    from tests.tool.test_renewal import age_secret

    env_file = tmp_path / "www" / "cypht" / ".env"
    seeded = seed_provisioned(emulator, env_file, lifetime_days=20)  # type: ignore[arg-type]
    age_secret(emulator, seeded["object_id"], seeded["key_id"], left=0.2, lifetime_days=20)
    for path in (tmp_path / "www", env_file.parent, env_file):
        os.chown(path, 33, 33)
    os.chmod(tmp_path, 0o755)   # www-data reaches its own .env, as on a server
    units = tmp_path / "units"
    ns = in_namespace(tmp_path)
    r = run(home, "schedule", "install", "--env-file", str(env_file), "--systemd-dir", str(units), "--json",
            prefix=ns)
    assert r.returncode == 0, r
    [sched] = r.json["schedules"]
    service, timer = units / f"{sched['unit']}.service", units / f"{sched['unit']}.timer"
    checked = verify(service, timer)
    assert checked.returncode == 0, checked.stderr
    text = service.read_text()
    assert directive(text, "User") == "root"

    # the credentials file: the default, root's, 0600 in a 0700 folder; the admin fills it in
    creds = Path(directive(text, "EnvironmentFile").replace("%%", "%"))
    assert creds.parent == Path("/etc/cypht-azure/credentials")
    on_disk = tmp_path / "etc-upper" / creds.relative_to("/etc")
    assert (stat.S_IMODE(on_disk.stat().st_mode), on_disk.stat().st_uid) == (0o600, 0)
    assert (stat.S_IMODE(on_disk.parent.stat().st_mode), on_disk.parent.stat().st_uid) == (0o700, 0)
    info = emulator.info  # type: ignore[attr-defined]
    with on_disk.open("a") as f:
        f.write(f"CYPHT_AZURE_AUTH=environment\nAZURE_TENANT_ID={info['tenant_id']}\n"
                f"AZURE_CLIENT_ID={info['admin_client_id']}\nAZURE_CLIENT_SECRET={info['admin_client_secret']}\n"
                f"CYPHT_AZURE_AUTHORITY_HOST={info['authority_host']}\nCYPHT_AZURE_GRAPH_URL={info['graph_url']}\n"
                f"CYPHT_AZURE_CA_FILE={info['ca_file']}\n")
    stolen = subprocess.run([*ns, *AS_WWW_DATA, "cat", str(creds)], capture_output=True, text=True)
    assert stolen.returncode != 0 and info["admin_client_secret"] not in stolen.stdout, stolen

    # the job, as systemd starts it: ExecStart's argv, the EnvironmentFile's variables, root's account
    argv = systemd_words(directive(text, "ExecStart"))
    variables = dict(line.split("=", 1) for line in on_disk.read_text().splitlines()
                     if line and not line.startswith("#"))
    job_env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin", "HOME": "/root", "USER": "root",
               "LOGNAME": "root", "SHELL": "/bin/sh", **variables}
    job = subprocess.run([*ns, *argv], env=job_env, capture_output=True, text=True, timeout=120, cwd="/")
    assert job.returncode == 0, job.stderr
    after = env_file.read_text()
    assert seeded["key_id"] not in after and seeded["secret"] not in after
    new_id = re.search(r"^OUTLOOK_CLIENT_SECRET_ID=(\S+)$", after, re.M)
    assert new_id is not None
    keys = [c["keyId"].lower() for c in emulator.directory.data["applications"][seeded["object_id"].lower()]  # type: ignore[attr-defined]
            ["passwordCredentials"]]
    assert keys == [new_id.group(1).strip("'\"").lower()]


def test_root_cron_job_for_a_www_data_env_rotates(home: Path, tmp_path: Path, emulator: object) -> None:
    """The same where systemd is absent: the cron line, run as cron runs it (root, /bin/sh, the file's
    PATH), rotates the secret; its credentials are root's alone."""
    from tests.guarantees.harness import seed_provisioned
    from tests.tool.test_renewal import age_secret

    env_file = tmp_path / "www" / "cypht" / ".env"
    seeded = seed_provisioned(emulator, env_file, lifetime_days=20)  # type: ignore[arg-type]
    age_secret(emulator, seeded["object_id"], seeded["key_id"], left=0.2, lifetime_days=20)
    for path in (tmp_path / "www", env_file.parent, env_file):
        os.chown(path, 33, 33)
    cron = tmp_path / "cron.d" / "cypht-azure"
    ns = in_namespace(tmp_path)
    r = run(home, "schedule", "install", "--env-file", str(env_file), "--cron-file", str(cron), prefix=ns)
    assert r.returncode == 0, r
    text = cron.read_text()
    user, command = cron_job(text)
    assert user == "root"
    creds = Path(shlex.split(re.search(r"set -a; (\. \S+);", command).group(1))[1])  # type: ignore[union-attr]
    assert creds.parent == Path("/etc/cypht-azure/credentials")
    on_disk = tmp_path / "etc-upper" / creds.relative_to("/etc")
    assert (stat.S_IMODE(on_disk.stat().st_mode), on_disk.stat().st_uid) == (0o600, 0)
    info = emulator.info  # type: ignore[attr-defined]
    with on_disk.open("a") as f:
        f.write(f"CYPHT_AZURE_AUTH=environment\nAZURE_TENANT_ID={info['tenant_id']}\n"
                f"AZURE_CLIENT_ID={info['admin_client_id']}\nAZURE_CLIENT_SECRET='{info['admin_client_secret']}'\n"
                f"CYPHT_AZURE_AUTHORITY_HOST={info['authority_host']}\nCYPHT_AZURE_GRAPH_URL={info['graph_url']}\n"
                f"CYPHT_AZURE_CA_FILE={info['ca_file']}\n")
    stolen = subprocess.run([*ns, *AS_WWW_DATA, "cat", str(creds)], capture_output=True, text=True)
    assert stolen.returncode != 0 and info["admin_client_secret"] not in stolen.stdout, stolen
    cron_env = dict(line.split("=", 1) for line in text.splitlines() if re.match(r"^[A-Z]+=", line))
    job = subprocess.run([*ns, "/bin/sh", "-c", command], capture_output=True, text=True, timeout=120, cwd="/",
                         env={**cron_env, "HOME": "/root", "LOGNAME": "root"})
    assert job.returncode == 0, job.stderr
    after = env_file.read_text()
    assert seeded["key_id"] not in after and seeded["secret"] not in after
