"""`schedule`: a systemd timer (or, without systemd, a cron entry) that runs
`rotate-secret --when-due --env-file F` twice a day as the operator — root, as certbot's renewals run —
never as the owner of F (the web server user, which must never hold the tenant credential).

The random delay lives in the timer (`RandomizedDelaySec`), `Persistent=true` catches up after a
machine was off, and the sign-in comes from a credentials file the admin fills in: mode 0600, in a
folder only the job's account can enter (`/etc/cypht-azure/credentials/`, 0700), created once with
commented placeholders and never overwritten. `install` checks the set-up the way the job will run it
(that account, those paths): the program and its interpreter must be executable by it and writable by
no one else, the credentials readable by it and by nobody else. Nothing here signs in or talks to Graph;
`install` writes files and says what to run next (it does not start units: the credentials are not
there yet). The text of the files, and the escaping of every path in them, is `jobfiles`.
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import random
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cypht_azure.errors import InputError
from cypht_azure.operations.unattended import jobfiles, toolfiles

DEFAULT_SYSTEMD_DIR = Path("/etc/systemd/system")
DEFAULT_CRON_FILE = Path("/etc/cron.d/cypht-azure")
CRON_DIR = Path("/etc/cron.d")
UNIT_PREFIX = "cypht-azure-rotate-"
CREDENTIALS_FOLDER = "credentials"


@dataclass
class ScheduleRequest:
    env_file: Path | None
    systemd_dir: Path | None = None
    cron_file: Path | None = None
    credentials_file: Path | None = None
    dry_run: bool = False


@dataclass
class FileChange:
    path: str
    action: str            # "write" | "unchanged" | "keep" (credentials already there) | "remove"
    mode: str | None = None
    content: str | None = None


@dataclass
class ScheduleResult:
    command: str           # install | show | remove
    kind: str              # systemd | cron
    env_file: str | None
    unit: str | None
    run_as: str | None
    dry_run: bool
    files: list[FileChange] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir()


def choose_kind(req: ScheduleRequest) -> str:
    if req.systemd_dir is not None and req.cron_file is not None:
        raise InputError("--systemd-dir and --cron-file choose different schedulers.", hint="Give one of them.")
    if req.systemd_dir is not None:
        return "systemd"
    if req.cron_file is not None:
        return "cron"
    return "systemd" if systemd_running() else "cron"


def unit_name(env_file: Path) -> str:
    return UNIT_PREFIX + hashlib.sha256(os.path.realpath(env_file).encode()).hexdigest()[:10]


def executable() -> str:
    """The installed `cypht-azure` next to this Python (a venv or pipx), else the one on PATH."""
    beside = Path(sys.executable).parent / "cypht-azure"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside.absolute())
    found = shutil.which("cypht-azure")
    if found:
        return os.path.abspath(found)
    raise InputError("Cannot find the installed cypht-azure program for the schedule to run.",
                     hint="Install cypht-azure (pip or pipx) so that `cypht-azure` is on PATH, then run again.")


@dataclass(frozen=True)
class Account:
    """Who the job runs as: the operator running `install` (root on a server)."""

    uid: int
    gid: int
    user: str
    group: str

    @classmethod
    def current(cls) -> Account:
        uid, gid = os.geteuid(), os.getegid()
        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            user = str(uid)
        try:
            group = grp.getgrgid(gid).gr_name
        except KeyError:
            group = str(gid)
        return cls(uid, gid, user, group)

    def groups(self) -> set[int]:
        try:
            return set(os.getgrouplist(self.user, self.gid))
        except (KeyError, OSError):
            return {self.gid}


def _owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _required_env(req: ScheduleRequest) -> Path:
    if req.env_file is None:
        raise InputError("schedule install and remove need --env-file.", hint="Name Cypht's .env with --env-file.")
    path = Path(os.path.abspath(req.env_file))
    jobfiles.check_value("The .env path", str(path), hint="Rename the file or its folder; then run again.")
    return path


def credentials_path(req: ScheduleRequest, env_file: Path) -> Path:
    if req.credentials_file is not None:
        return Path(os.path.abspath(req.credentials_file))
    return toolfiles.config_dir() / CREDENTIALS_FOLDER / f"{unit_name(env_file)}.credentials"


def rotate_args(env_file: Path, *, quiet: bool) -> list[str]:
    return ["rotate-secret", "--when-due", "--env-file", str(env_file)] + (["--quiet"] if quiet else [])


# --- the set-up, checked the way the job runs it --------------------------------------------------------------

def _allowed(st: os.stat_result, account: Account, groups: set[int], bit: int) -> bool:
    """Whether `account` has permission `bit` (4 read, 2 write, 1 execute/search) on a file."""
    mode = st.st_mode
    if account.uid == 0:  # root: everything but executing a file no one may execute
        return not (bit == 1 and stat.S_ISREG(mode)) or bool(mode & 0o111)
    if st.st_uid == account.uid:
        return bool(mode & (bit << 6))
    if st.st_gid in groups:
        return bool(mode & (bit << 3))
    return bool(mode & bit)


def _folders_above(path: Path) -> list[Path]:
    return list(reversed(path.parents))


def reach_problem(path: Path, account: Account, want: int) -> str | None:
    """Why `account` could not read (4) or execute (1) `path`, checked folder by folder; None if it can."""
    groups = account.groups()
    for folder in _folders_above(path):
        try:
            st = folder.stat()
        except FileNotFoundError:
            return f"{path} does not exist"
        except OSError as exc:
            return f"{folder} cannot be examined ({exc.strerror})"
        if not _allowed(st, account, groups, 1):
            return f"{account.user} cannot enter {folder} (mode {stat.S_IMODE(st.st_mode):04o}, owner {_owner_name(st.st_uid)})"
    try:
        st = path.stat()
    except FileNotFoundError:
        return f"{path} does not exist"
    except OSError as exc:
        return f"{path} cannot be examined ({exc.strerror})"
    if not stat.S_ISREG(st.st_mode):
        return f"{path} is not a regular file"
    if not _allowed(st, account, groups, want):
        verb = "read" if want == 4 else "execute"
        return f"{account.user} cannot {verb} {path} (mode {stat.S_IMODE(st.st_mode):04o}, owner {_owner_name(st.st_uid)})"
    return None


def _writable_by_others(st: os.stat_result, account: Account) -> str | None:
    if st.st_uid not in (0, account.uid):
        return f"owned by {_owner_name(st.st_uid)}"
    mode = stat.S_IMODE(st.st_mode)
    sticky_root_folder = stat.S_ISDIR(st.st_mode) and mode & stat.S_ISVTX and st.st_uid == 0
    if mode & 0o022 and not sticky_root_folder:
        return f"writable by its group or others (mode {mode:04o})"
    return None


def trust_problem(path: Path, account: Account) -> str | None:
    """cron's and sudo's rule: what the job's account executes, and every folder above it, belongs to
    that account or root and is writable by no one else; else another user decides what it runs."""
    for item in [*_folders_above(path), path]:
        try:
            st = item.stat()
        except OSError as exc:
            return f"{item} cannot be examined ({exc.strerror})"
        why = _writable_by_others(st, account)
        if why:
            return f"{item} is {why}"
    return None


def interpreter_of(program: Path) -> Path | None:
    """The interpreter a script's `#!` line names (a venv's or pipx's Python), if it has one."""
    try:
        with open(program, "rb") as f:
            first = f.readline(4096)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode("utf-8", "replace").split()
    return Path(words[0]) if words else None


def check_program(program: Path, account: Account) -> None:
    """The job can execute the program (and its interpreter), and nobody else can change them."""
    who = "root" if account.uid == 0 else f"{account.user} or root"
    hint = (f"Install cypht-azure where {account.user} can run it and only {who} can change "
            "it (e.g. `pipx install cypht-azure` as root, or a venv under /opt owned by root), and run "
            "`schedule install` with that installation.")
    jobfiles.check_value("The program path", str(program), hint=hint)
    targets = [program, Path(os.path.realpath(program))]
    interpreter = interpreter_of(program)
    if interpreter is not None:
        targets += [interpreter, Path(os.path.realpath(interpreter))]
    for target in dict.fromkeys(targets):
        why = reach_problem(target, account, 1)
        if why:
            raise InputError(f"The scheduled job, running as {account.user}, could not start {program}: {why}.",
                             hint=hint)
        why = trust_problem(target, account)
        if why:
            raise InputError(f"The scheduled job would run {program} as {account.user}, but {why}: another "
                             "user could change what it runs.", hint=hint)


def check_credentials(path: Path, account: Account) -> None:
    """The credentials: readable by the job, by no other account (the .env owner above all); 0600 in a
    folder only the job's account can enter, the folders above it writable by no one else."""
    hint = (f"Keep the credentials in a folder only {account.user} can enter, e.g. the default "
            f"{toolfiles.config_dir() / CREDENTIALS_FOLDER}/ (mode 0700), as a file of mode 0600.")
    jobfiles.check_value("The credentials path", str(path), hint=hint)
    folder = path.parent
    for item in _folders_above(path)[:-1]:
        if not item.exists():
            break
        why = trust_problem(item, account)
        if why:
            raise InputError(f"The credentials file {path} would sit below {why}: another user could swap it.",
                             hint=hint)
    if folder.exists():
        st = folder.stat()
        if st.st_uid != account.uid or stat.S_IMODE(st.st_mode) & 0o077:
            raise InputError(
                f"The credentials folder {folder} can be entered by others (mode {stat.S_IMODE(st.st_mode):04o}, "
                f"owner {_owner_name(st.st_uid)}); the tenant credential must be reachable by {account.user} only.",
                hint=hint)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise InputError(f"The credentials file {path} is not a regular file.", hint=hint)
    if path.exists():
        st = path.stat()
        if st.st_uid != account.uid or stat.S_IMODE(st.st_mode) & 0o077:
            raise InputError(
                f"The credentials file {path} is readable or writable by others (mode "
                f"{stat.S_IMODE(st.st_mode):04o}, owner {_owner_name(st.st_uid)}).",
                hint=f"chown {account.user} {path} && chmod 0600 {path}")
        why = reach_problem(path, account, 4)
        if why:
            raise InputError(f"The scheduled job could not read its sign-in: {why}.", hint=hint)


def _mode(path: Path) -> str:
    return f"{path.stat().st_mode & 0o7777:04o}"


def _write_if_changed(path: Path, text: str, mode: int, dry_run: bool) -> FileChange:
    try:
        current = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        current = None
    if current == text:
        return FileChange(str(path), "unchanged", _mode(path), text)
    if not dry_run:
        toolfiles.write_atomic(path, text, mode)
    return FileChange(str(path), "write", f"{mode:04o}", text)


def install(req: ScheduleRequest) -> ScheduleResult:
    env_file = _required_env(req)
    kind = choose_kind(req)
    if not env_file.exists():
        raise InputError(f"{env_file} does not exist.",
                         hint="Run `cypht-azure provision --env-file ...` first, then schedule its renewals.")
    account = Account.current()
    program = executable()
    check_program(Path(program), account)
    unit = unit_name(env_file)
    credentials = credentials_path(req, env_file)
    check_credentials(credentials, account)
    result = ScheduleResult("install", kind, str(env_file), unit if kind == "systemd" else None,
                            f"{account.user}:{account.group}", req.dry_run)
    if kind == "systemd":
        folder = req.systemd_dir or DEFAULT_SYSTEMD_DIR
        where = [] if folder == DEFAULT_SYSTEMD_DIR else ["--systemd-dir", str(Path(os.path.abspath(folder)))]
        remove_command = jobfiles.removal_command(env_file, *where)
        service = jobfiles.service_unit(env_file, (account.user, account.group), credentials,
                                        [program, *rotate_args(env_file, quiet=False)], remove_command)
        timer = jobfiles.timer_unit(env_file, remove_command)
        result.files.append(_write_if_changed(folder / f"{unit}.service", service, toolfiles.PUBLIC, req.dry_run))
        result.files.append(_write_if_changed(folder / f"{unit}.timer", timer, toolfiles.PUBLIC, req.dry_run))
    else:
        path = Path(os.path.abspath(req.cron_file or DEFAULT_CRON_FILE))
        jobfiles.check_value("The cron file path", str(path), hint="Choose another --cron-file.")
        jobfiles.check_cron_name(path)
        result.files.append(_cron_install(path, env_file, account, credentials, program, req.dry_run))
    result.files.append(_credentials(credentials, env_file, unit, kind, account, req.dry_run))
    result.next_steps = _next_steps(credentials, unit, kind, req)
    return result


def _cron_install(path: Path, env_file: Path, account: Account, credentials: Path, program: str,
                  dry_run: bool) -> FileChange:
    try:
        current = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        current = ("# Written by `cypht-azure schedule install`; `cypht-azure schedule remove --env-file PATH` "
                   "edits it.\nSHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n")
    argv = [program, *rotate_args(env_file, quiet=True)]
    existing = jobfiles.cron_blocks(current).get(str(env_file))
    kept = re.search(r"^(\d+ \d+,\d+) ", existing, re.M) if existing else None
    rng = random.SystemRandom()
    minute, hour = rng.randrange(60), rng.randrange(12)
    when = kept.group(1) if kept else f"{minute} {hour},{hour + 12}"  # keep the minute chosen the first time
    where = [] if path == DEFAULT_CRON_FILE else ["--cron-file", str(path)]
    block = jobfiles.cron_block(env_file, account.user, credentials, argv, when, jobfiles.removal_command(env_file, *where))
    text = current.replace(existing, block) if existing else current + block
    # cron.d files must belong to root and not be writable by others; 0644 as Debian ships them
    return _write_if_changed(path, text, toolfiles.PUBLIC, dry_run)


def credentials_template(env_file: Path, unit: str, kind: str) -> str:
    start = (f"systemctl start {unit}.service, then journalctl -u {unit}.service" if kind == "systemd"
             else "run the command of the cron entry by hand, as root")
    return f"""\
# Sign-in for the scheduled `cypht-azure rotate-secret --when-due --env-file {env_file}`.
# Fill in ONE of the blocks below (remove the leading '#'), then test it: {start}
# Mode 0600, in a folder only the job's account can enter: keep it that way, and never give it to the
# web server's user. cypht-azure never overwrites it. See docs/ci.md.
#
# A service principal with a certificate (the CI app of docs/ci.md, owner of Cypht's registration):
#CYPHT_AZURE_AUTH=environment
#AZURE_TENANT_ID=00000000-0000-0000-0000-000000000000
#AZURE_CLIENT_ID=00000000-0000-0000-0000-000000000000
#AZURE_CLIENT_CERTIFICATE_PATH=/etc/cypht-azure/ci.pem
#
# Or the managed identity of this Azure VM:
#CYPHT_AZURE_AUTH=managed-identity
"""


def _credentials(path: Path, env_file: Path, unit: str, kind: str, account: Account, dry_run: bool) -> FileChange:
    if path.exists():
        return FileChange(str(path), "keep", _mode(path))
    text = credentials_template(env_file, unit, kind)
    if not dry_run:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        toolfiles.create_exclusive(path, text, toolfiles.PRIVATE)
    return FileChange(str(path), "write", f"{toolfiles.PRIVATE:04o}", text)


def _next_steps(credentials: Path, unit: str, kind: str, req: ScheduleRequest) -> list[str]:
    steps = [f"Fill in the sign-in in {credentials} (one of the commented blocks)."]
    if kind == "systemd":
        where = req.systemd_dir or DEFAULT_SYSTEMD_DIR
        if where != DEFAULT_SYSTEMD_DIR:
            steps.append(f"Install the two unit files from {where} where systemd reads them: "
                         f"cp {where}/{unit}.service {where}/{unit}.timer {DEFAULT_SYSTEMD_DIR}/")
        steps += ["systemctl daemon-reload", f"systemctl enable --now {unit}.timer",
                  f"Try it now: systemctl start {unit}.service",
                  f"Read its log (also when the start failed): journalctl -u {unit}.service"]
        return steps
    path = Path(os.path.abspath(req.cron_file or DEFAULT_CRON_FILE))
    if path.parent == CRON_DIR:
        steps.append("cron reads the file by itself; the first run mails its errors to root (if mail is set up).")
    else:
        steps.append(f"cron reads only {CRON_DIR}: copy the file there, owned by root and mode 0644: "
                     f"install -o root -g root -m 0644 {path} {CRON_DIR}/{path.name}")
    return steps


def show(req: ScheduleRequest) -> list[ScheduleResult]:
    """What is installed: for --env-file, its schedule; without it, every cypht-azure schedule found."""
    kind = choose_kind(req)
    results: list[ScheduleResult] = []
    if kind == "systemd":
        folder = req.systemd_dir or DEFAULT_SYSTEMD_DIR
        names = ([unit_name(_required_env(req))] if req.env_file is not None else
                 sorted(p.stem for p in folder.glob(f"{UNIT_PREFIX}*.timer")))
        for unit in names:
            files = [folder / f"{unit}.service", folder / f"{unit}.timer"]
            found = [FileChange(str(p), "installed", _mode(p), p.read_text(encoding="utf-8"))
                     for p in files if p.exists()]
            if found:
                env = _env_of_service(found[0].content or "")
                results.append(ScheduleResult("show", kind, env, unit, _run_as(found[0].content or ""),
                                              False, found))
    else:
        path = req.cron_file or DEFAULT_CRON_FILE
        try:
            blocks = jobfiles.cron_blocks(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            blocks = {}
        for env, block in sorted(blocks.items()):
            if req.env_file is None or env == str(_required_env(req)):
                user = re.search(r"^[\d,]+ [\d,]+ \* \* \* (\S+) ", block, re.M)
                results.append(ScheduleResult("show", kind, env, None, user.group(1) if user else None, False,
                                              [FileChange(str(path), "installed", _mode(path), block)]))
    return results


def _env_of_service(text: str) -> str | None:
    match = re.search(r"^ExecStart=(.*)$", text, re.M)
    if not match:
        return None
    argv = jobfiles.systemd_unquote(match.group(1))
    return argv[argv.index("--env-file") + 1] if "--env-file" in argv[:-1] else None


def _run_as(text: str) -> str | None:
    user = re.search(r"^User=(.*)$", text, re.M)
    group = re.search(r"^Group=(.*)$", text, re.M)
    return f"{user.group(1)}:{group.group(1) if group else ''}" if user else None


def _systemctl(args: list[str]) -> str | None:
    """Run systemctl where systemd runs this machine; the problem, if it failed."""
    try:
        done = subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if done.returncode == 0 else (done.stderr.strip() or f"exit code {done.returncode}")


def remove(req: ScheduleRequest) -> ScheduleResult:
    env_file = _required_env(req)
    kind = choose_kind(req)
    unit = unit_name(env_file)
    result = ScheduleResult("remove", kind, str(env_file), unit if kind == "systemd" else None, None, req.dry_run)
    if kind == "systemd":
        _remove_units(req, unit, result)
    else:
        path = req.cron_file or DEFAULT_CRON_FILE
        try:
            current = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            current = ""
        block = jobfiles.cron_blocks(current).get(str(env_file))
        if block:
            rest = current.replace(block, "")
            if jobfiles.cron_blocks(rest):
                result.files.append(_write_if_changed(path, rest, toolfiles.PUBLIC, req.dry_run))
            else:
                result.files.append(FileChange(str(path), "remove"))
                if not req.dry_run:
                    path.unlink()
    credentials = credentials_path(req, env_file)
    if credentials.exists():
        result.next_steps.append(f"The sign-in in {credentials} was kept; delete it when no longer needed.")
    return result


def _remove_units(req: ScheduleRequest, unit: str, result: ScheduleResult) -> None:
    """The units where they were written and their copies where systemd reads them; `systemctl disable`
    first (run where systemd runs this machine, else printed)."""
    folders = list(dict.fromkeys([req.systemd_dir or DEFAULT_SYSTEMD_DIR, DEFAULT_SYSTEMD_DIR]))
    paths = [path for folder in folders
             for path in (folder / "timers.target.wants" / f"{unit}.timer", folder / f"{unit}.timer",
                          folder / f"{unit}.service")]
    found = [p for p in paths if p.is_symlink() or p.exists()]
    if not found:
        return
    active = systemd_running() and any(p.parent in (DEFAULT_SYSTEMD_DIR, DEFAULT_SYSTEMD_DIR / "timers.target.wants")
                                       for p in found)
    disable = ["disable", "--now", f"{unit}.timer"]
    if req.dry_run:
        result.next_steps += [f"systemctl {' '.join(disable)}", "systemctl daemon-reload"]
    elif active:
        problem = _systemctl(disable)
        if problem:
            result.next_steps.append(f"`systemctl {' '.join(disable)}` failed ({problem}): run it by hand.")
    for path in found:
        result.files.append(FileChange(str(path), "remove"))
        if not req.dry_run:
            path.unlink()
    if req.dry_run:
        return
    if active:
        problem = _systemctl(["daemon-reload"])
        if problem:
            result.next_steps.append(f"`systemctl daemon-reload` failed ({problem}): run it by hand.")
    else:  # the timers.target.wants link `disable` removes is gone with the rest
        result.next_steps.append(f"Where systemd had loaded these units: systemctl stop {unit}.timer, then "
                                 "systemctl daemon-reload")
