"""The randomized fault loop: seeded iterations of provision / rotate-secret under kills, closed pipes,
disk errors, concurrent runs and emulator faults, each followed by a check of the emulator and the disk.

One `Loop` runs iterations in episodes: an episode starts from a fresh `.env` folder (user lines, mode
0640, owned by www-data when run as root) and carries its state (the registration, the secrets, the
file) from one iteration to the next, as a real installation does. An iteration is:

1. a run (or two at once) with one fault drawn from the iteration's own random generator;
2. the check of what it left, against the emulator and the disk, never the tool's report
   (`check_state`): the secret in `.env` is on the app and gets a token, both provider blocks agree, the
   app holds at most 2 secrets, the lines the tool does not own are byte-identical, mode and owner are
   kept, no temporary file is left, nothing secret was printed, no traceback;
3. a clean run (no fault), which must succeed and leave the app with exactly the secret `.env` holds.

Every random choice of an episode comes from `random.Random(f"{seed}:{first iteration}")`, so
`CYPHT_AZURE_CHAOS_SEED=S CYPHT_AZURE_CHAOS_START=I` replays the episode in which iteration I failed
(as far as timing allows). A violation is recorded with its seed, iteration and fault, the episode ends
(its state is suspect) and the loop goes on; the test fails at the end with all of them.
"""

from __future__ import annotations

import os
import pwd
import random
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cypht_azure import envdisk, envfile
from cypht_azure.emulator import Emulator
from tests.guarantees import invariant
from tests.guarantees.harness import USER_LINES, Run, base_env, command_args, command_line, run_cli, wait_for
from tests.tool.conftest import REPO

SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT, "SIGHUP": signal.SIGHUP}
# The step boundaries each command passes (checkpoints.py), where a targeted kill lands.
STEPS = {
    "provision": ["env-locked", "signed-in", "app-ready", "secret-added", "env-written"],
    "rotate-secret": ["env-locked", "signed-in", "secret-added", "secret-verified", "env-written"],
}
INJECT = Path(__file__).resolve().parent / "inject_chaos"
EPISODE = 8          # iterations per episode (a fresh .env folder)
RUN_TIMEOUT = 90.0   # seconds a faulted run may take before it counts as hung
FAULTS = (  # (name, weight)
    ("clean", 2), ("kill-random", 4), ("kill-at-step", 4), ("kill-in-addPassword", 3), ("kill-in-write", 2),
    ("closed-stdout", 2), ("closed-stderr", 1), ("disk-enospc", 1), ("disk-eio-fsync", 1),
    ("disk-eio-folder-fsync", 1), ("two-at-once", 2), ("emulator-5xx", 3), ("emulator-latency", 2),
)


@dataclass
class Violation:
    seed: int
    iteration: int
    episode_start: int
    fault: str
    kind: str
    detail: str

    def replay(self) -> str:
        return (f"CYPHT_AZURE_CHAOS_SEED={self.seed} CYPHT_AZURE_CHAOS_START={self.episode_start} "
                f"CYPHT_AZURE_CHAOS_ITERATIONS={self.iteration - self.episode_start + 1}")


@dataclass
class Stats:
    iterations: int = 0
    runs: int = 0
    seconds: float = 0.0
    faults: Counter[str] = field(default_factory=Counter)
    kills: Counter[str] = field(default_factory=Counter)
    violations: list[Violation] = field(default_factory=list)

    def by_kind(self) -> Counter[str]:
        return Counter(f"{v.kind} ({v.fault})" for v in self.violations)

    def report(self, seed: int) -> str:
        lines = [f"fault loop: seed {seed}, {self.iterations} iterations, {self.runs} runs, {self.seconds:.0f} s",
                 "kills by signal: " + (", ".join(f"{k} {n}" for k, n in sorted(self.kills.items())) or "none"),
                 "faults: " + ", ".join(f"{k} {n}" for k, n in sorted(self.faults.items())),
                 f"violations: {len(self.violations)}"
                 + "".join(f"\n  {n} x {k}" for k, n in sorted(self.by_kind().items()))]
        for v in self.violations[:20]:
            lines.append(f"- iteration {v.iteration} [{v.fault}] {v.kind}: {v.detail[:600]}\n  replay: {v.replay()}")
        return "\n".join(lines)


class Hung(Exception):
    pass


def _classify(problem: str) -> str:
    rules = (("traceback", "traceback"), ("is not on the app", "secret-not-on-app"),
             ("does not work at the token endpoint", "secret-refused"), ("not a live app", "app-gone"),
             ("known secret", "leak"), ("secret-shaped", "leak"), ("JWT-shaped", "leak"),
             ("new files next to .env", "temp-file-left"), ("lines the tool does not own", "user-lines-changed"),
             ("line endings", "user-lines-changed"), (".env mode", "mode-changed"), ("owner changed", "owner-changed"),
             ("disagree", "blocks-disagree"), ("half-written", "half-written"), ("does not parse", "env-unparseable"),
             ("disappeared", "env-gone"), ("orphaned secret", "orphan-after-clean-run"),
             ("secrets on the app", "over-limit"), ("holds other secrets", "extra-secret-after-clean-run"),
             ("clean run failed", "clean-run-failed"), ("hung", "hung"), ("registrations for one URL", "two-apps"))
    for needle, kind in rules:
        if needle in problem:
            return kind
    return re.sub(r"[^a-z]+", "-", problem.lower())[:40].strip("-")


class Loop:
    def __init__(self, emulator: Emulator, workdir: Path, seed: int) -> None:
        self.emulator = emulator
        self.workdir = workdir
        self.seed = seed
        self.stats = Stats()
        self.as_root = os.geteuid() == 0
        self.env_file = workdir / "none" / ".env"
        self.rng = random.Random()
        self.known: set[str] = set()  # every secret value seen in .env: none may ever be printed
        self.episode_start = 0
        self.settle = 0.0  # seconds a delayed request of a killed run may still take in the emulator

    # ------------------------------------------------------------------ episodes

    def new_episode(self, iteration: int) -> None:
        self.episode_start = iteration
        self.rng = random.Random(f"{self.seed}:{iteration}")
        folder = self.workdir / f"ep{iteration}"
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "cypht").mkdir(parents=True)
        self.home = folder / "home"
        self.env = base_env(self.emulator, self.home, CYPHT_AZURE_VERIFY_TIMEOUT="20", CYPHT_AZURE_TIMEOUT="3")
        self.env_file = folder / "cypht" / ".env"
        self.env_file.write_text(USER_LINES)
        self.env_file.chmod(0o640)
        if self.as_root:
            www = pwd.getpwnam("www-data")
            os.chown(self.env_file.parent, www.pw_uid, www.pw_gid)
            os.chown(self.env_file, www.pw_uid, www.pw_gid)
            self.env_file.parent.chmod(0o750)
        self.known = set()
        self.url = f"https://mail{iteration}.example.com"

    def args(self, command: str, *extra: str) -> list[str]:
        if command == "provision":
            return ["provision", "--url", self.url, "--env-file", str(self.env_file), *extra]
        return command_args(command, self.env_file, *extra)

    def command_now(self) -> str:
        """rotate-secret once .env names an app; provision before (and now and then after)."""
        doc = self._doc()
        if doc is None or not doc.get("OUTLOOK_CLIENT_ID"):
            return "provision"
        return "provision" if self.rng.random() < 0.25 else "rotate-secret"

    def _doc(self) -> envfile.EnvDocument | None:
        try:
            return envdisk.load(self.env_file)
        except (envfile.EnvFileError, OSError):
            return None

    # ------------------------------------------------------------------ one iteration

    def iteration(self, i: int) -> None:
        if i == self.episode_start or (i - self.episode_start) % EPISODE == 0:
            self.new_episode(i)
        fault = self.rng.choices([f for f, _ in FAULTS], weights=[w for _, w in FAULTS])[0]
        command = self.command_now()
        self.stats.faults[fault] += 1
        before = invariant.snapshot(self.env_file, known_secrets=self.known)
        self.emulator.faults.clear()
        self.settle = 0.0
        try:
            runs = self.faulted(fault, command)
            # A request the emulator was delaying when its client died still completes (as Graph's would):
            # let it land before looking, so what it made is seen by the check and by the clean run.
            time.sleep(self.settle)
        except Hung as exc:
            self._violation(i, fault, f"hung: {exc}")
            return
        finally:
            self.emulator.faults.clear()
            for proc in getattr(self, "_procs", []):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            self._procs = []
        problems = self.check_state(before, runs, clean=False, command=command)
        if problems:
            self._violation(i, fault, *problems)
            return
        self._remember_secrets()
        # The clean run: it must succeed and leave only the secret .env holds.
        command = "rotate-secret" if (self._doc() or envfile.parse("")).get("OUTLOOK_CLIENT_ID") else "provision"
        before = invariant.snapshot(self.env_file, known_secrets=self.known)
        run = run_cli(self.env, *self.args(command), timeout=RUN_TIMEOUT)
        self.stats.runs += 1
        problems = []
        if run.returncode != 0:
            problems.append(f"clean run failed after [{fault}]: exit {run.returncode}: "
                            + " | ".join(line for line in run.stderr.splitlines() if "error" in line.lower())[:400])
        problems += self.check_state(before, [run], clean=run.returncode == 0, command=command)
        if problems:
            self._violation(i, fault, *problems)
        self._remember_secrets()

    def _violation(self, i: int, fault: str, *problems: str) -> None:
        seen = set()
        for problem in problems:
            kind = _classify(problem)
            if kind in seen:
                continue
            seen.add(kind)
            self.stats.violations.append(Violation(self.seed, i, self.episode_start, fault, kind, problem))
        self.episode_start = i + 1  # the state is suspect: the next iteration starts a new episode

    def _remember_secrets(self) -> None:
        doc = self._doc()
        if doc is not None:
            self.known |= {v for k in invariant.PROVIDER_KEYS.values() if (v := doc.get(k.client_secret))}

    # ------------------------------------------------------------------ the faults

    def faulted(self, fault: str, command: str) -> list[Run]:
        rng, env = self.rng, dict(self.env)
        args = self.args(command)
        if fault == "clean":
            return [self._run(env, args)]
        if fault == "kill-random":
            return [self._kill(env, args, after=rng.uniform(0.05, 2.2))]
        if fault == "kill-at-step":  # held at the step until the signal is sent, then it goes on
            env |= self._pause_env() | {"CYPHT_AZURE_TEST_ACT_AT": rng.choice(STEPS[command]),
                                        "PYTHONPATH": f"{INJECT}:{REPO}"}
            return [self._kill(env, args, pause=self.home / "paused")]
        if fault == "kill-in-addPassword":
            rule = self.emulator.faults.latency(rng.uniform(0.5, 1.5), method="POST", path=r"/addPassword$", times=1)
            self.settle = rule.delay + 0.5
            return [self._kill(env, args, rule=rule, after=rng.uniform(0.0, rule.delay + 0.2))]
        if fault == "kill-in-write":  # the secret is in the temporary file, not renamed yet
            env |= self._pause_env() | {"CYPHT_AZURE_TEST_ACT_ON_FSYNC": "1", "PYTHONPATH": f"{INJECT}:{REPO}"}
            return [self._kill(env, args, pause=self.home / "paused")]
        if fault in ("closed-stdout", "closed-stderr"):
            return [self._closed_pipe(env, args, fault.split("-")[1], keep=rng.randint(0, 4))]
        if fault.startswith("disk-"):
            env["PYTHONPATH"] = f"{INJECT}:{REPO}"
            if fault == "disk-eio-folder-fsync":
                env["CYPHT_AZURE_TEST_FAIL_DIR_FSYNC"] = "1"
            else:
                env["CYPHT_AZURE_TEST_FAIL_WRITE"] = "ENOSPC-on-write" if fault == "disk-enospc" else "EIO-on-fsync"
            return [self._run(env, args)]
        if fault == "two-at-once":
            other = self.args(rng.choice(["rotate-secret", command]))
            procs = [self._start(env, args), self._start(env, other)]
            if rng.random() < 0.4:
                time.sleep(rng.uniform(0.2, 2.5))
                self._signal(rng.choice(procs), rng.choice(list(SIGNALS)))
            return [self._finish(p, a) for p, a in zip(procs, (args, other), strict=True)]
        if fault == "emulator-5xx":
            path = rng.choice([r"/addPassword$", r"/removePassword$", r"/applications", r"/servicePrincipals",
                               r"/oauth2/v2\.0/token$", r".*"])
            self.emulator.faults.add(rng.choice([None, "GET", "POST", "PATCH"]), path, rng.choice([500, 502, 503, 504]),
                                     times=rng.randint(1, 4))
            if rng.random() < 0.3:
                return [self._kill(env, args, after=rng.uniform(0.3, 3.0))]
            return [self._run(env, args)]
        if fault == "emulator-latency":
            path = rng.choice([r"/addPassword$", r"/applications", r"/oauth2/v2\.0/token$", r".*"])
            rule = self.emulator.faults.latency(rng.uniform(0.1, 1.5), path=path, times=rng.randint(1, 3))
            self.settle = rule.delay + 0.5
            if rng.random() < 0.5:
                return [self._kill(env, args, after=rng.uniform(0.3, 3.5))]
            return [self._run(env, args)]
        raise ValueError(fault)

    def _pause_env(self) -> dict[str, str]:
        for name in ("paused", "resume"):
            (self.home / name).unlink(missing_ok=True)
        return {"CYPHT_AZURE_TEST_PAUSE_FILE": str(self.home / "paused"),
                "CYPHT_AZURE_TEST_RESUME_FILE": str(self.home / "resume")}

    def _start(self, env: dict[str, str], args: list[str]) -> subprocess.Popen[str]:
        proc = subprocess.Popen(command_line(*args), env=env, cwd=REPO, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._procs = [*getattr(self, "_procs", []), proc]
        self.stats.runs += 1
        return proc

    def _finish(self, proc: subprocess.Popen[str], args: list[str], started: float | None = None) -> Run:
        try:
            out, err = proc.communicate(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise Hung(f"{args[0]} still running after {RUN_TIMEOUT:.0f} s\n{err[-2000:]}") from None
        return Run(tuple(args), proc.returncode, out, err, time.monotonic() - (started or time.monotonic()))

    def _run(self, env: dict[str, str], args: list[str]) -> Run:
        return self._finish(self._start(env, args), args)

    def _signal(self, proc: subprocess.Popen[str], name: str) -> None:
        if proc.poll() is None:
            proc.send_signal(SIGNALS[name])
            self.stats.kills[name] += 1

    def _kill(self, env: dict[str, str], args: list[str], *, after: float = 0.0, pause: Path | None = None,
              rule: Any = None) -> Run:
        name = self.rng.choice(list(SIGNALS))
        proc = self._start(env, args)
        if pause is not None:
            wait_for(pause, 60, proc)
        if rule is not None:  # the request is in flight once the emulator matched the rule
            deadline = time.monotonic() + 60
            while rule.fired == 0 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
        time.sleep(after)
        self._signal(proc, name)
        if pause is not None:
            (self.home / "resume").touch()
        return self._finish(proc, args)

    def _closed_pipe(self, env: dict[str, str], args: list[str], which: str, *, keep: int) -> Run:
        """The reader of stdout (`| head -n K`) or stderr goes away after `keep` lines."""
        proc = self._start(env, args)
        stream = proc.stdout if which == "stdout" else proc.stderr
        other = proc.stderr if which == "stdout" else proc.stdout
        assert stream is not None and other is not None
        drained: list[str] = []
        reader = threading.Thread(target=lambda: drained.append(other.read()), daemon=True)
        reader.start()
        lines = [stream.readline() for _ in range(keep)]
        stream.close()
        try:
            proc.wait(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise Hung(f"{args[0]} with its {which} closed still running after {RUN_TIMEOUT:.0f} s") from None
        reader.join(10)
        seen, rest = "".join(lines), "".join(drained)
        out, err = (seen, rest) if which == "stdout" else (rest, seen)
        return Run(tuple(args), proc.returncode, out, err, 0.0)

    # ------------------------------------------------------------------ the check

    def check_state(self, before: invariant.Snapshot, runs: list[Run], *, clean: bool, command: str) -> list[str]:
        """Against the emulator and the disk: the invariant, at most 2 secrets, and after a clean run only
        the secret .env holds."""
        problems: list[str] = []
        for run in runs or [None]:  # type: ignore[list-item]
            try:
                invariant.check(self.emulator, before, run, command=command, after_success=clean, php=False)
            except AssertionError as exc:
                found = [line[2:] for line in str(exc).splitlines() if line.startswith("- ")]
                if run is not None and "a traceback was printed" in found:
                    last = [line for line in run.stderr.splitlines() if line.strip()][-1:]
                    found[found.index("a traceback was printed")] += f" (rc {run.returncode}): {' '.join(last)[:200]}"
                problems += found
            # A killed run prints nothing useful; a signal other than SIGKILL must still end it cleanly.
        doc = self._doc()
        client_id = doc.get("OUTLOOK_CLIENT_ID") if doc is not None else None
        for app in self.emulator.directory.applications():
            if "cypht-azure" not in (app.get("tags") or []):
                continue
            keys = {str(c["keyId"]).lower() for c in app.get("passwordCredentials") or []}
            if len(keys) > 2:
                problems.append(f"{len(keys)} secrets on the app {app['appId']}")
            if clean and doc is not None and client_id and app["appId"].lower() == client_id.lower():
                held = {str(doc.get(k.secret_id) or "").lower() for k in invariant.PROVIDER_KEYS.values()} - {""}
                if keys != held:
                    problems.append(f"after a clean run the app holds other secrets than .env: {sorted(keys - held)}")
        return sorted(set(problems), key=problems.index)


def run_loop(*, seed: int, iterations: int, budget: float | None, start: int = 0) -> Stats:
    """Run up to `iterations` iterations from `start` (or until `budget` seconds are spent)."""
    started = time.monotonic()
    with Emulator() as emulator, tempfile.TemporaryDirectory(prefix="cypht-azure-chaos-") as tmp:
        workdir = Path(tmp)
        if os.geteuid() == 0:
            os.chmod(workdir, 0o755)  # www-data owns the .env folders below
        loop = Loop(emulator, workdir, seed)
        loop.episode_start = start
        for i in range(start, start + iterations):
            if budget is not None and time.monotonic() - started > budget:
                break
            loop.iteration(i)
            loop.stats.iterations += 1
        loop.stats.seconds = time.monotonic() - started
        return loop.stats
