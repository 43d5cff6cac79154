"""`schedule`: a systemd timer (or, without systemd, a cron entry) that runs
`rotate-secret --when-due --env-file F` twice a day as the owner of F.

The random delay lives in the timer (`RandomizedDelaySec`), `Persistent=true` catches up after a
machine was off, and the sign-in comes from a credentials file the admin fills in: created once with
mode 0600 and commented placeholders, never overwritten. Nothing here signs in or talks to Graph;
`install` writes files and says what to run next (it does not start units: the credentials are not
there yet).
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import random
import re
import shlex
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cypht_azure.errors import InputError
from cypht_azure.operations.unattended import toolfiles

DEFAULT_SYSTEMD_DIR = Path("/etc/systemd/system")
DEFAULT_CRON_FILE = Path("/etc/cron.d/cypht-azure")
UNIT_PREFIX = "cypht-azure-rotate-"
CRON_BEGIN, CRON_END = "# BEGIN cypht-azure rotate-secret --env-file ", "# END cypht-azure rotate-secret --env-file "


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


def owner_of(env_file: Path) -> tuple[str, str]:
    try:
        st = env_file.stat()
    except FileNotFoundError:
        raise InputError(f"{env_file} does not exist.",
                         hint="Run `cypht-azure provision --env-file ...` first; the schedule runs as the "
                              "owner of that .env.") from None
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return user, group


def _required_env(req: ScheduleRequest) -> Path:
    if req.env_file is None:
        raise InputError("schedule install and remove need --env-file.", hint="Name Cypht's .env with --env-file.")
    return Path(os.path.abspath(req.env_file))


def credentials_path(req: ScheduleRequest, env_file: Path) -> Path:
    return req.credentials_file or toolfiles.config_dir() / f"{unit_name(env_file)}.credentials"


def _systemd_quote(word: str) -> str:
    """One ExecStart word: systemd expands % specifiers and $VARIABLES, and splits at white space."""
    word = word.replace("%", "%%").replace("$", "$$")
    if re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _path_setting(path: Path) -> str:
    text = str(path).replace("%", "%%")
    if any(c.isspace() for c in text):
        raise InputError(f"{path}: systemd cannot name a file with white space in this setting.",
                         hint="Choose a credentials file path without spaces (--credentials-file).")
    return text


def rotate_args(env_file: Path, *, quiet: bool) -> list[str]:
    return ["rotate-secret", "--when-due", "--env-file", str(env_file)] + (["--quiet"] if quiet else [])


def credentials_template(env_file: Path, unit: str, kind: str) -> str:
    start = f"systemctl start {unit}.service" if kind == "systemd" else "wait for the next run, or run the command in the cron file by hand"
    return f"""\
# Sign-in for the scheduled `cypht-azure rotate-secret --when-due --env-file {env_file}`.
# Fill in ONE of the blocks below (remove the leading '#'), then test it: {start}
# This file is mode 0600: keep it that way. cypht-azure never overwrites it. See docs/ci.md.
#
# A service principal with a certificate (the CI app of docs/ci.md, owner of Cypht's registration):
#CYPHT_AZURE_AUTH=environment
#AZURE_TENANT_ID=00000000-0000-0000-0000-000000000000
#AZURE_CLIENT_ID=00000000-0000-0000-0000-000000000000
#AZURE_CLIENT_CERTIFICATE_PATH=/etc/cypht-azure/ci.pem
#
# Or the managed identity of this Azure VM:
#CYPHT_AZURE_AUTH=managed-identity
#
# Optional: webhooks to alert (space-separated), if not recorded in .env by --notify.
#CYPHT_AZURE_NOTIFY=https://alerts.example.com/hooks/cypht
"""


def service_unit(env_file: Path, user: str, group: str, credentials: Path, program: str) -> str:
    exec_start = " ".join(_systemd_quote(w) for w in [program, *rotate_args(env_file, quiet=False)])
    return f"""\
# Written by `cypht-azure schedule install`; `cypht-azure schedule remove` deletes it.
[Unit]
Description=Rotate Cypht's Outlook/Office365 client secret in {str(env_file).replace('%', '%%')} when due
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
User={user}
Group={group}
EnvironmentFile={_path_setting(credentials)}
# The audit log where root keeps it, owned by the user above (systemd creates the folder).
LogsDirectory=cypht-azure
LogsDirectoryMode=0750
Environment=CYPHT_AZURE_LOG_DIR=/var/log/cypht-azure
ExecStart={exec_start}
UMask=0077
NoNewPrivileges=yes
PrivateTmp=yes
"""


def timer_unit(env_file: Path) -> str:
    return f"""\
# Written by `cypht-azure schedule install`; `cypht-azure schedule remove` deletes it.
[Unit]
Description=Twice a day: rotate the client secret in {str(env_file).replace('%', '%%')} when a third of its lifetime is left

[Timer]
OnCalendar=*-*-* 00,12:00:00
RandomizedDelaySec=12h
Persistent=true

[Install]
WantedBy=timers.target
"""


def cron_block(env_file: Path, user: str, credentials: Path, program: str, rng: random.Random,
               at: str | None = None) -> str:
    minute, hour = rng.randrange(60), rng.randrange(12)
    when = at or f"{minute} {hour},{hour + 12}"
    load = f"set -a; . {shlex.quote(str(credentials))}; set +a"
    command = f"{load}; exec {shlex.join([program, *rotate_args(env_file, quiet=True)])}".replace("%", "\\%")
    return (f"{CRON_BEGIN}{env_file}\n"
            f"# Twice a day, at a minute chosen at install time (cron has no random delay of its own).\n"
            f"{when} * * * {user} {command}\n"
            f"{CRON_END}{env_file}\n")


def _cron_blocks(text: str) -> dict[str, str]:
    blocks: dict[str, str] = {}
    current: str | None = None
    for line in text.splitlines(keepends=True):
        if line.startswith(CRON_BEGIN):
            current = line[len(CRON_BEGIN):].rstrip("\n")
            blocks[current] = line
        elif current is not None:
            blocks[current] += line
            if line.startswith(CRON_END):
                current = None
    return blocks


def _without_block(text: str, env_file: Path) -> str:
    block = _cron_blocks(text).get(str(env_file))
    return text.replace(block, "") if block else text


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
    user, group = owner_of(env_file)
    program = executable()
    unit = unit_name(env_file)
    credentials = credentials_path(req, env_file)
    result = ScheduleResult("install", kind, str(env_file), unit if kind == "systemd" else None,
                            f"{user}:{group}", req.dry_run)
    if kind == "systemd":
        folder = req.systemd_dir or DEFAULT_SYSTEMD_DIR
        service = service_unit(env_file, user, group, credentials, program)
        timer = timer_unit(env_file)
        result.files.append(_write_if_changed(folder / f"{unit}.service", service, toolfiles.PUBLIC, req.dry_run))
        result.files.append(_write_if_changed(folder / f"{unit}.timer", timer, toolfiles.PUBLIC, req.dry_run))
    else:
        path = req.cron_file or DEFAULT_CRON_FILE
        try:
            current = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            current = "# Written by `cypht-azure schedule install`; `cypht-azure schedule remove` edits it.\n"
            current += "SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
        existing = _cron_blocks(current).get(str(env_file))
        if existing:  # keep the minute chosen the first time, and the block's place
            minute_hours = re.search(r"^(\d+ \d+,\d+) ", existing, re.M)
            block = cron_block(env_file, user, credentials, program, random.SystemRandom(),
                               at=minute_hours.group(1) if minute_hours else None)
            text = current.replace(existing, block)
        else:
            text = current + cron_block(env_file, user, credentials, program, random.SystemRandom())
        # cron.d files must belong to root and not be writable by others; 0644 as Debian ships them
        result.files.append(_write_if_changed(path, text, toolfiles.PUBLIC, req.dry_run))
    result.files.append(_credentials(credentials, env_file, unit, kind, user, group, req.dry_run))
    result.next_steps = _next_steps(result, credentials, unit, kind, req)
    return result


def _credentials(path: Path, env_file: Path, unit: str, kind: str, user: str, group: str, dry_run: bool) -> FileChange:
    if path.exists():
        return FileChange(str(path), "keep", _mode(path))
    text = credentials_template(env_file, unit, kind)
    if not dry_run and toolfiles.create_exclusive(path, text, toolfiles.PRIVATE) and kind == "cron":
        # cron runs the command as the .env owner, who must read it; systemd reads it as root
        st = env_file.stat()
        os.chown(path, st.st_uid, st.st_gid)
    return FileChange(str(path), "write", f"{toolfiles.PRIVATE:04o}", text)


def _next_steps(result: ScheduleResult, credentials: Path, unit: str, kind: str, req: ScheduleRequest) -> list[str]:
    steps = [f"Fill in the sign-in in {credentials} (one of the commented blocks)."]
    if kind == "systemd":
        where = req.systemd_dir or DEFAULT_SYSTEMD_DIR
        if where != DEFAULT_SYSTEMD_DIR:
            steps.append(f"Install the two unit files from {where} where systemd reads them (e.g. {DEFAULT_SYSTEMD_DIR}).")
        steps += ["systemctl daemon-reload", f"systemctl enable --now {unit}.timer",
                  f"Try it now: systemctl start {unit}.service && journalctl -u {unit}.service"]
    else:
        steps.append("cron reads the file by itself; the first run mails its errors to the run's user (if any).")
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
            blocks = _cron_blocks(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            blocks = {}
        for env, block in sorted(blocks.items()):
            if req.env_file is None or env == str(_required_env(req)):
                results.append(ScheduleResult("show", kind, env, None, None, False,
                                              [FileChange(str(path), "installed", _mode(path), block)]))
    return results


def _env_of_service(text: str) -> str | None:
    match = re.search(r"^ExecStart=.*--env-file (\"(?:[^\"\\]|\\.)*\"|\S+)", text, re.M)
    if not match:
        return None
    return shlex.split(match.group(1))[0].replace("%%", "%").replace("$$", "$")


def _run_as(text: str) -> str | None:
    user = re.search(r"^User=(.*)$", text, re.M)
    group = re.search(r"^Group=(.*)$", text, re.M)
    return f"{user.group(1)}:{group.group(1) if group else ''}" if user else None


def remove(req: ScheduleRequest) -> ScheduleResult:
    env_file = _required_env(req)
    kind = choose_kind(req)
    unit = unit_name(env_file)
    result = ScheduleResult("remove", kind, str(env_file), unit if kind == "systemd" else None, None, req.dry_run)
    if kind == "systemd":
        folder = req.systemd_dir or DEFAULT_SYSTEMD_DIR
        for path in [folder / "timers.target.wants" / f"{unit}.timer", folder / f"{unit}.timer",
                     folder / f"{unit}.service"]:
            if path.is_symlink() or path.exists():
                result.files.append(FileChange(str(path), "remove"))
                if not req.dry_run:
                    path.unlink()
        if result.files:
            result.next_steps = [f"systemctl stop {unit}.timer", "systemctl daemon-reload"]
    else:
        path = req.cron_file or DEFAULT_CRON_FILE
        try:
            current = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            current = ""
        if str(env_file) in _cron_blocks(current):
            rest = _without_block(current, env_file)
            if _cron_blocks(rest):
                result.files.append(_write_if_changed(path, rest, toolfiles.PUBLIC, req.dry_run))
            else:
                result.files.append(FileChange(str(path), "remove"))
                if not req.dry_run:
                    path.unlink()
    credentials = credentials_path(req, env_file)
    if credentials.exists():
        result.next_steps.append(f"The sign-in in {credentials} was kept; delete it when no longer needed.")
    return result
