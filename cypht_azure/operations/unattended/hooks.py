"""Deploy hooks: commands that make a running Cypht pick up the new secret after `.env` holds it.

Two sources, run in this order and each at most once: the `--deploy-hook CMD` flags (shell command
lines, in the order given), then the executables of the hooks folder in name order
(`/etc/cypht-azure/deploy-hooks.d/` for root, `$XDG_CONFIG_HOME/cypht-azure/deploy-hooks.d/` otherwise;
`CYPHT_AZURE_HOOKS_DIR` overrides). A flag that names a folder hook's path runs once.

Hooks are checked before anything changes in Graph (`validate`), and run with an environment built
here from scratch (`hook_environment`): a few harmless variables of ours plus the locale, PATH and the
tools' own settings (Docker, Kubernetes) — never the client secret, never the sign-in credentials,
and `os.environ` is never edited. A hook reads the secret from the `.env` file if it needs it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
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


def default_hooks_dir(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    if environ.get(HOOKS_DIR_ENV):
        return Path(environ[HOOKS_DIR_ENV])
    return toolfiles.config_dir(environ) / "deploy-hooks.d"


def is_backup_name(name: str) -> bool:
    return name.startswith(".") or name.endswith(BACKUP_SUFFIXES) or ".dpkg-" in name or ".ucf-" in name


@dataclass(frozen=True)
class Hook:
    """One hook to run: a shell command line from --deploy-hook, or an executable of the hooks folder."""

    name: str      # what reports show: the command line, or the file name
    source: str    # "flag" | "folder"
    argv: tuple[str, ...]

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


def validate(hooks: Sequence[Hook], folder: Path | None = None, environ: Mapping[str, str] | None = None) -> None:
    """Refuse, before any Graph call, a hook that cannot run or that others could have replaced."""
    path = hook_environment(None, environ)["PATH"]
    for hook in hooks:
        if hook.source == "flag":
            try:
                words = shlex.split(hook.name)
            except ValueError as exc:
                raise InputError(f"--deploy-hook {hook.name!r} is not a valid shell command line ({exc}).",
                                 hint="Check its quotes.") from None
            if not words:
                raise InputError("--deploy-hook is empty.", hint="Give the command that reloads Cypht.")
            program = words[0]
            if "=" in program or program in _SHELL_WORDS:
                continue  # an assignment or a shell keyword: the shell decides
            found = shutil.which(program, path=path) if "/" not in program else (
                program if os.path.isfile(program) and os.access(program, os.X_OK) else None)
            if found is None:
                raise InputError(f"--deploy-hook {hook.name!r}: {program!r} is not an executable "
                                 f"{'file' if '/' in program else 'on PATH (' + path + ')'}.",
                                 hint="Give the full path of the program, or install it.")
        else:
            _check_not_writable_by_others(Path(hook.argv[0]))
    if folder is not None and folder.is_dir() and any(h.source == "folder" for h in hooks):
        _check_not_writable_by_others(folder)


_SHELL_WORDS = {"if", "for", "while", "case", "{", "(", "!", "[", "test", "exec", "cd", "set", "export", ":",
                "true", "false", "echo", "printf", "command", "."}


def _check_not_writable_by_others(path: Path) -> None:
    st = path.stat()
    mode = stat.S_IMODE(st.st_mode)
    if mode & stat.S_IWOTH or (mode & stat.S_IWGRP and st.st_uid == 0 and st.st_gid != 0):
        raise InputError(
            f"The deploy hook {path} can be changed by other users (mode {mode:04o}), and it would run "
            "with this user's rights.",
            hint=f"Run `chmod go-w {shlex.quote(str(path))}`.")
    if os.geteuid() == 0 and st.st_uid != 0:
        raise InputError(f"The deploy hook {path} is owned by uid {st.st_uid}, not root, and would run as root.",
                         hint=f"Run `chown root: {shlex.quote(str(path))}` after checking it.")


def hook_environment(facts: HookEnv | None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A fresh environment: passed-through basics (LC_*, PATH, Docker/Kubernetes settings) and the facts."""
    environ = os.environ if environ is None else environ
    env = {k: v for k, v in environ.items() if k in PASSED_THROUGH or k.startswith("LC_")}
    env.setdefault("PATH", DEFAULT_PATH)
    if facts is not None:
        env.update(facts.variables())
    return env


def _redact(text: str, secrets: Sequence[Secret]) -> str:
    for secret in secrets:
        value = secret.reveal()
        if value:
            text = text.replace(value, "<redacted>")
    return text


def run_hook(hook: Hook, env: Mapping[str, str], *, timeout: float = DEFAULT_TIMEOUT,
             redact: Sequence[Secret] = (), cwd: Path | None = None) -> HookRun:
    """Run one hook in its own process group; kill the group when it outlives `timeout`."""
    started = time.monotonic()
    try:
        proc = subprocess.Popen(hook.argv, env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        return HookRun(hook.name, hook.source, None, False, time.monotonic() - started,
                       error=f"could not start: {exc.strerror or exc}")
    try:
        out, _ = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, _ = proc.communicate()
        timed_out = True
    text = _redact(out.decode("utf-8", "replace"), redact)[-OUTPUT_LIMIT:]
    return HookRun(hook.name, hook.source, None if timed_out else proc.returncode, timed_out,
                   time.monotonic() - started, text)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


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
