"""Deploy hooks: commands that make a running Cypht pick up the new secret after `.env` holds it.

Two sources, run in this order and each at most once: the `--deploy-hook CMD` flags (shell command
lines, in the order given), then the executables of the hooks folder in name order. The hooks folder is
the same for every run on the machine, whoever runs it (root by hand, a scheduled job as another user):
`/etc/cypht-azure/deploy-hooks.d/` whenever it exists (and for root always), else, for a user other
than root, `$XDG_CONFIG_HOME/cypht-azure/deploy-hooks.d/`; `CYPHT_AZURE_HOOKS_DIR` overrides. A flag
that names a folder hook's path runs once.

Hooks are resolved and checked when the plan is made, before anything changes in Graph (`validate`):
each program becomes an absolute path — a relative one (`./reload.sh`) against the folder the command
was started in, never the `.env` folder — and exactly that file runs, in that folder. As root, a hook
whose file or any folder above it another user owns or may write is refused (cron's and sudo's rule).
Hooks run with an environment built here from scratch (`hook_environment`): a few harmless variables
of ours plus the locale, PATH and the tools' own settings (Docker, Kubernetes) — never the client
secret, never the sign-in credentials, and `os.environ` is never edited. A hook reads the secret from
the `.env` file if it needs it; its output is redacted of every secret the run knows before it is shown.

A hook runs in its own process group; at its time-out the whole group is killed and its output pipe is
not waited on any more (a child that escaped with `setsid` cannot hold the run). A hook that exited is
judged by its exit code, whatever children it left holding the pipe.
"""

from __future__ import annotations

import io
import os
import shlex
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from cypht_azure.errors import InputError
from cypht_azure.operations.unattended import toolfiles
from cypht_azure.secret import Secret

HOOKS_DIR_ENV = "CYPHT_AZURE_HOOKS_DIR"
DEFAULT_TIMEOUT = 300.0
OUTPUT_LIMIT = 4000  # characters of a hook's output kept for the report (the end of it)
# Where a failed hook's output starts in an error message: shown to the user, never logged or sent
# (a hook may print what it read from .env).
OUTPUT_MARK = "\nIts output:\n"
OUTPUT_PREFIX = "  | "  # each line of a hook's output, so it cannot run into the sentences around it


def output_block(output: str) -> str:
    """A hook's output for the end of an error message: on its own lines after OUTPUT_MARK, each
    line prefixed, so nothing the tool says afterwards reads as part of it."""
    return OUTPUT_MARK + "\n".join(OUTPUT_PREFIX + line for line in output.splitlines())
# Names a package manager or an editor leaves next to the real file: never run as hooks.
BACKUP_SUFFIXES = ("~", ".bak", ".orig", ".swp", ".tmp", ".rpmnew", ".rpmsave", ".rpmorig", ".disabled")
# Parent variables a hook may need to reach Docker, Kubernetes or systemd; credentials are not among them.
PASSED_THROUGH = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR",
                  "XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS", "DOCKER_HOST", "DOCKER_CONTEXT",
                  "DOCKER_CONFIG", "KUBECONFIG")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


SYSTEM_HOOKS_DIR = Path("/etc/cypht-azure/deploy-hooks.d")


def default_hooks_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The one hooks folder of every run on this machine: the system one when it exists (a scheduled run
    as another user sees the hooks root installed), else the user's own."""
    environ = os.environ if environ is None else environ
    if environ.get(HOOKS_DIR_ENV):
        return Path(environ[HOOKS_DIR_ENV])
    if toolfiles.is_root() or SYSTEM_HOOKS_DIR.is_dir():
        return SYSTEM_HOOKS_DIR
    return toolfiles.config_dir(environ) / "deploy-hooks.d"


def is_backup_name(name: str) -> bool:
    return name.startswith(".") or name.endswith(BACKUP_SUFFIXES) or ".dpkg-" in name or ".ucf-" in name


@dataclass(frozen=True)
class Hook:
    """One hook to run: a shell command line from --deploy-hook, or an executable of the hooks folder."""

    name: str      # what reports show: the command line, or the file name
    source: str    # "flag" | "folder"
    argv: tuple[str, ...]
    cwd: str | None = None  # where it runs: the folder the command was started in (set by validate)

    @property
    def command(self) -> str:
        return shlex.join(self.argv) if self.source == "folder" else self.argv[-1]


@dataclass
class HookRun:
    name: str
    source: str
    exit_code: int | None   # None when it timed out or could not start
    timed_out: bool
    seconds: float
    output: str = ""        # the end of stdout+stderr, for the message (never logged to the audit file)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and self.error is None

    def summary(self) -> dict[str, object]:
        """What the audit log and --json keep: no output (a hook may print what it read from .env)."""
        return {"name": self.name, "source": self.source, "exit_code": self.exit_code,
                "timed_out": self.timed_out, "seconds": round(self.seconds, 2), "ok": self.ok,
                **({"error": self.error} if self.error else {})}

    def describe(self) -> str:
        if self.timed_out:
            return f"{self.name}: timed out after {self.seconds:.0f} s"
        if self.error:
            return f"{self.name}: {self.error}"
        return f"{self.name}: exit code {self.exit_code}"


@dataclass(frozen=True)
class HookEnv:
    """The facts a hook gets, as CYPHT_AZURE_* variables."""

    env_file: Path
    client_id: str
    new_key_id: str
    old_key_ids: Sequence[str] = ()
    expires: str = ""

    def variables(self) -> dict[str, str]:
        return {
            "CYPHT_AZURE_ENV_FILE": str(self.env_file),
            "CYPHT_AZURE_CLIENT_ID": self.client_id,
            "CYPHT_AZURE_NEW_KEY_ID": self.new_key_id,
            "CYPHT_AZURE_OLD_KEY_IDS": " ".join(self.old_key_ids),
            "CYPHT_AZURE_EXPIRES": self.expires,
        }


def folder_hooks(folder: Path) -> tuple[list[Hook], list[str]]:
    """The folder's executables in name order, and the names it skipped (backups, not executable)."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except FileNotFoundError:
        return [], []
    except NotADirectoryError:
        raise InputError(f"The deploy hooks folder {folder} is not a folder.",
                         hint=f"Remove it or set {HOOKS_DIR_ENV} to a folder.") from None
    except PermissionError:
        raise InputError(f"The deploy hooks folder {folder} cannot be read by this user.",
                         hint="Fix its permissions, or run as the user that owns it.") from None
    hooks, skipped = [], []
    for entry in entries:
        if is_backup_name(entry.name):
            skipped.append(entry.name)
        elif entry.is_file() and os.access(entry.path, os.X_OK):
            hooks.append(Hook(entry.name, "folder", (os.path.abspath(entry.path),)))
        else:
            skipped.append(entry.name)
    return hooks, skipped


def flag_hooks(commands: Iterable[str]) -> list[Hook]:
    return [Hook(command, "flag", ("/bin/sh", "-c", command)) for command in commands]


def collect(flags: Iterable[str], folder: Path | None) -> list[Hook]:
    """Flags first, then the folder; a command given twice, or a flag naming a folder hook, runs once."""
    seen: set[str] = set()
    result: list[Hook] = []
    folder_list = folder_hooks(folder)[0] if folder is not None else []
    folder_paths = {h.argv[0] for h in folder_list}
    for hook in flag_hooks(flags):
        text = hook.name.strip()
        if text in seen:
            continue
        seen.add(text)
        if os.path.abspath(text) in folder_paths:
            seen.add(os.path.abspath(text))
        result.append(hook)
    for hook in folder_list:
        if hook.argv[0] not in seen:
            seen.add(hook.argv[0])
            result.append(hook)
    return result


def validate(hooks: Sequence[Hook], folder: Path | None = None, environ: Mapping[str, str] | None = None,
             *, cwd: str | None = None) -> tuple[Hook, ...]:
    """Resolve every hook to the absolute file it runs, and refuse, before any Graph call, one that cannot
    run or that others could replace. Returns the hooks to run: exactly those files, from `cwd` (the
    folder the command was started in)."""
    path = hook_environment(None, environ)["PATH"]
    cwd = cwd or os.getcwd()
    resolved: list[Hook] = []
    for hook in hooks:
        if hook.source == "flag":
            resolved.append(_resolve_flag(hook, path, cwd))
        else:
            program = os.path.abspath(hook.argv[0])
            _check_trusted(program)
            resolved.append(Hook(hook.name, hook.source, (program, *hook.argv[1:]), cwd))
    if folder is not None and folder.is_dir() and any(h.source == "folder" for h in hooks):
        _check_trusted(str(folder.absolute()), what="deploy hooks folder")
    return tuple(resolved)


_SHELL_WORDS = {"if", "for", "while", "case", "{", "(", "!", "[", "test", "exec", "cd", "set", "export", ":",
                "true", "false", "echo", "printf", "command", "."}


def _resolve_flag(hook: Hook, path: str, cwd: str) -> Hook:
    """`--deploy-hook CMD`: its program found now (on the hooks' PATH, or a path against `cwd`) and
    written into the command line as an absolute path, so the shell runs exactly the file checked."""
    command = hook.name
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise InputError(f"--deploy-hook {command!r} is not a valid shell command line ({exc}).",
                         hint="Check its quotes.") from None
    if not words:
        raise InputError("--deploy-hook is empty.", hint="Give the command that reloads Cypht.")
    program = words[0]
    if "=" in program or program in _SHELL_WORDS:
        return Hook(hook.name, hook.source, hook.argv, cwd)  # an assignment or a shell keyword: the shell decides
    if "/" in program:
        candidate = os.path.normpath(os.path.join(cwd, program))
        found = candidate if os.path.isfile(candidate) and os.access(candidate, os.X_OK) else None
    else:
        found = shutil.which(program, path=path)
        found = os.path.abspath(found) if found else None
    if found is None:
        where = (f"file (relative paths are taken from the folder the command runs in, {cwd})" if "/" in program
                 else "on PATH (" + path + ")")
        raise InputError(f"--deploy-hook {command!r}: {program!r} is not an executable {where}.",
                         hint="Give the full path of the program, or install it.")
    _check_trusted(found)
    stream = io.StringIO(command)
    lexer = shlex.shlex(stream, posix=True)
    lexer.whitespace_split, lexer.commenters = True, ""
    lexer.get_token()
    rest = command[stream.tell():]
    line = shlex.quote(found) + (" " + rest if rest else "")
    return Hook(hook.name, hook.source, (hook.argv[0], "-c", line), cwd)


def _check_trusted(path: str, *, what: str = "deploy hook") -> None:
    """The file (and, as root, every folder above it, through symbolic links) can be changed by no one
    but root and this user; as root a file group- or world-writable is refused as cron and sudo do."""
    if not toolfiles.is_root():
        _check_not_writable_by_others(Path(path), what)
        return
    for chain in (Path(os.path.abspath(path)), Path(os.path.realpath(path))):
        for each in (chain, *chain.parents):
            try:
                st = os.lstat(each)
            except OSError as exc:
                raise InputError(f"The {what} {path} cannot be checked: {each}: {exc.strerror}.",
                                 hint="Give a path that exists.") from None
            if st.st_uid not in (0, os.geteuid()):
                raise InputError(
                    f"The {what} {path} would run as root, but {each} belongs to uid {st.st_uid}"
                    f"{_user(st.st_uid)}, who could change what runs.",
                    hint=f"Install the hook in a folder only root can write (e.g. {SYSTEM_HOOKS_DIR}/), owned "
                         "by root, after checking it.")
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode) or not mode & (stat.S_IWGRP | stat.S_IWOTH):
                continue
            if each != chain and stat.S_ISDIR(st.st_mode) and mode & stat.S_ISVTX and st.st_uid == 0:
                continue  # a sticky folder of root's (/tmp): others cannot replace what root owns in it
            raise InputError(
                f"The {what} {path} would run as root, but {each} can be changed by other users (mode {mode:04o}).",
                hint=f"Run `chmod go-w {shlex.quote(str(each))}`, or install the hook in {SYSTEM_HOOKS_DIR}/.")


def _user(uid: int) -> str:
    import pwd

    try:
        return f" ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return ""


def _check_not_writable_by_others(path: Path, what: str = "deploy hook") -> None:
    st = path.stat()
    mode = stat.S_IMODE(st.st_mode)
    if mode & stat.S_IWOTH:
        raise InputError(
            f"The {what} {path} can be changed by other users (mode {mode:04o}), and it would run "
            "with this user's rights.",
            hint=f"Run `chmod go-w {shlex.quote(str(path))}`.")


def hook_environment(facts: HookEnv | None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A fresh environment: passed-through basics (LC_*, PATH, Docker/Kubernetes settings) and the facts."""
    environ = os.environ if environ is None else environ
    env = {k: v for k, v in environ.items() if k in PASSED_THROUGH or k.startswith("LC_")}
    env.setdefault("PATH", DEFAULT_PATH)
    if facts is not None:
        env.update(facts.variables())
    return env


def _redact(text: str, secrets: Sequence[Secret]) -> str:
    for value in sorted({secret.reveal() for secret in secrets}, key=len, reverse=True):
        if value:
            text = text.replace(value, "<redacted>")
    return text


def run_hook(hook: Hook, env: Mapping[str, str], *, timeout: float = DEFAULT_TIMEOUT,
             redact: Sequence[Secret] = (), cwd: Path | None = None) -> HookRun:
    """Run one hook in its own process group; kill the group when it outlives `timeout`.

    Its output is read by a thread, never waited for past the hook's end or its time-out: a child that
    escaped the group (`setsid`) and holds the pipe costs nothing."""
    started = time.monotonic()
    try:
        proc = subprocess.Popen(hook.argv, env=dict(env), cwd=hook.cwd or cwd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        return HookRun(hook.name, hook.source, None, False, time.monotonic() - started,
                       error=f"could not start: {exc.strerror or exc}")
    assert proc.stdout is not None
    output = _Tail(proc.stdout.fileno())
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        timed_out = proc.returncode is None or proc.returncode < 0  # it may have exited just then
    output.finish(grace=0.2)
    text = _redact(output.text(), redact)[-OUTPUT_LIMIT:]
    return HookRun(hook.name, hook.source, None if timed_out else proc.returncode, timed_out,
                   time.monotonic() - started, text)


class _Tail:
    """The end of what a pipe carries, read in a daemon thread (bytes kept: twice OUTPUT_LIMIT and more)."""

    KEEP = OUTPUT_LIMIT * 8

    def __init__(self, fd: int) -> None:
        self._data = bytearray()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(fd,), daemon=True)
        self._thread.start()

    def _read(self, fd: int) -> None:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            with self._lock:
                self._data += chunk
                del self._data[:-self.KEEP]

    def finish(self, *, grace: float) -> None:
        """What is still in the pipe once the hook ended: waited for at most `grace` seconds."""
        self._thread.join(grace)

    def text(self) -> str:
        with self._lock:
            return bytes(self._data).decode("utf-8", "replace")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the hook's process group, 2 s to end, then SIGKILL to whatever is left of the group."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=2)
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


@dataclass
class HookReport:
    runs: list[HookRun] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.runs)

    @property
    def failed(self) -> list[HookRun]:
        return [r for r in self.runs if not r.ok]


def run_all(hooks: Sequence[Hook], facts: HookEnv, *, timeout: float = DEFAULT_TIMEOUT,
            redact: Sequence[Secret] = (), environ: Mapping[str, str] | None = None) -> HookReport:
    """Run every hook in order; stop at the first failure (later hooks may depend on earlier ones)."""
    env = hook_environment(facts, environ)
    report = HookReport()
    for hook in hooks:
        run = run_hook(hook, env, timeout=timeout, redact=redact, cwd=facts.env_file.parent)
        report.runs.append(run)
        if not run.ok:
            break
    return report
