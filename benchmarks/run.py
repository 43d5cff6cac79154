"""Benchmarks: start-up, provision, re-runs and `status --all` against the local emulator.

Runnable by anyone: `nox -s bench` or `python benchmarks/run.py [--runs N] [--skip-azure-cli]`.
Every scenario runs the real CLI in a fresh process, after a warm-up, and reports the median, min
and max wall time and peak RSS (from the child's rusage), plus the requests the emulator saw.
The Azure CLI row drives `az` against the same emulator (see docs/emulator.md) when `az` can be
found or installed into the benchmark's own environment; otherwise it says why it is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cypht_azure.emulator import Emulator  # noqa: E402


@dataclass
class Sample:
    wall: float
    rss_mib: float
    graph: int = 0
    token: int = 0


@dataclass
class Row:
    name: str
    samples: list[Sample] = field(default_factory=list)
    note: str = ""

    def cells(self) -> list[str]:
        if not self.samples:
            return [self.name, "-", "-", "-", "-", "-", "-", self.note]
        walls = [s.wall for s in self.samples]
        rss = [s.rss_mib for s in self.samples]
        graph = statistics.median(s.graph for s in self.samples)
        token = statistics.median(s.token for s in self.samples)
        return [self.name, str(len(walls)), f"{statistics.median(walls):.3f}", f"{min(walls):.3f}",
                f"{max(walls):.3f}", f"{statistics.median(rss):.1f}", f"{graph:g}/{token:g}", self.note]


def run_process(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, int, str]:
    """Wall time, peak RSS (MiB) and exit status of one child process."""
    # Output goes to a file, not a pipe: waiting on a child that fills a pipe nobody reads would hang.
    with tempfile.TemporaryFile(mode="w+") as sink:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        sink.seek(0)
        return wall, usage.ru_maxrss / 1024, proc.returncode, sink.read()


def counts(emulator: Emulator) -> tuple[int, int]:
    log = emulator.request_log
    return (sum(1 for e in log if e.kind == "graph"), sum(1 for e in log if e.kind == "token"))


def base_env(emulator: Emulator, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "CYPHT_AZURE_"))}
    # Measure what an installed tool costs: pip writes bytecode at install time, and the warm-up run
    # writes it for an editable checkout, unless this variable forbids it.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    info = emulator.info
    env.update({
        "HOME": str(home), "PYTHONPATH": str(REPO),
        "CYPHT_AZURE_AUTH": "environment", "AZURE_TENANT_ID": info["tenant_id"],
        "AZURE_CLIENT_ID": info["admin_client_id"], "AZURE_CLIENT_SECRET": info["admin_client_secret"],
        "CYPHT_AZURE_AUTHORITY_HOST": info["authority_host"], "CYPHT_AZURE_GRAPH_URL": info["graph_url"],
        "CYPHT_AZURE_CA_FILE": info["ca_file"],
    })
    return env


CLI = [sys.executable, "-m", "cypht_azure"]


def measure(row: Row, runs: int, warmup: int, one: Callable[[int], Sample]) -> Row:
    print(f"... {row.name}", file=sys.stderr, flush=True)
    for i in range(warmup):
        one(-1 - i)
    for i in range(runs):
        row.samples.append(one(i))
    return row


def bench_help(args: list[str], runs: int, work: Path, env: dict[str, str]) -> Row:
    def one(_: int) -> Sample:
        wall, rss, code, out = run_process([*CLI, *args], env, work)
        assert code == 0, out
        return Sample(wall, rss)

    return measure(Row("cypht-azure " + " ".join(args)), runs, 2, one)


def bench_provision(emulator: Emulator, runs: int, work: Path, env: dict[str, str], name: str,
                    latency: float = 0.0) -> Row:
    if latency:
        emulator.faults.latency(latency)

    def one(i: int) -> Sample:
        env_file = work / f"{name}-{i}.env"
        emulator.clear_log()
        wall, rss, code, out = run_process(
            [*CLI, "provision", "--url", f"https://{name}-{i + 100}.example.com", "--env-file", str(env_file),
             "--no-verify", "--quiet"], env, work)
        assert code == 0, out
        graph, token = counts(emulator)
        return Sample(wall, rss, graph, token)

    row = measure(Row(f"provision (fresh){f', {latency * 1000:.0f} ms latency' if latency else ''}"), runs, 1, one)
    if latency:
        emulator.faults.clear()
    return row


def bench_rerun(emulator: Emulator, runs: int, work: Path, env: dict[str, str], argv: list[str], name: str) -> Row:
    env_file = work / "rerun.env"
    if not env_file.exists():
        code = run_process([*CLI, "provision", "--url", "https://rerun.example.com", "--env-file", str(env_file),
                            "--no-verify", "--quiet"], env, work)[2]
        assert code == 0

    def one(_: int) -> Sample:
        emulator.clear_log()
        wall, rss, code, out = run_process([*CLI, *argv, "--env-file", str(env_file), "--quiet"], env, work)
        assert code == 0, out
        graph, token = counts(emulator)
        return Sample(wall, rss, graph, token)

    return measure(Row(name), runs, 1, one)


def bench_status_all(emulator: Emulator, runs: int, work: Path, env: dict[str, str], apps: int) -> Row:
    seeded = time.perf_counter()
    emulator.directory.bulk_seed_applications(apps, tag="cypht-azure")
    seeded = time.perf_counter() - seeded

    def one(_: int) -> Sample:
        emulator.clear_log()
        wall, rss, code, out = run_process([*CLI, "status", "--all", "--json"], env, work)
        assert code == 0, out
        graph, token = counts(emulator)
        return Sample(wall, rss, graph, token)

    return measure(Row(f"status --all ({apps} apps + earlier ones)", note=f"seeded in {seeded:.2f} s"), runs, 1, one)


def find_az(install: bool) -> tuple[str | None, str]:
    az = os.environ.get("CYPHT_AZURE_AZ") or shutil.which("az")
    if az:
        return az, f"az at {az}"
    venv = REPO / ".bench-azure-cli"
    candidate = venv / "bin" / "az"
    if candidate.exists():
        return str(candidate), f"az from {venv}"
    if not install:
        return None, "az not found (run without --skip-azure-cli to install it)"
    print("Installing azure-cli into .bench-azure-cli (one time, a few minutes)...", file=sys.stderr)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "azure-cli"], check=True, timeout=1500)
    except (subprocess.SubprocessError, OSError) as exc:
        return None, f"azure-cli could not be installed: {exc}"
    return str(candidate), f"az installed into {venv}"


def bench_azure_cli(emulator: Emulator, runs: int, work: Path, az: str) -> Row:
    """`az ad app create` + `az ad app credential reset --append`, the recipe of docs/emulator.md."""
    from cypht_azure.emulator.azure_cli import az_environment

    env, setup = az_environment(emulator, work / "azure-config", az)
    for argv in setup:
        code, out = run_process(argv, env, work)[2:]
        assert code == 0, out[-2000:]

    def one(i: int) -> Sample:
        emulator.clear_log()
        wall1, rss1, code, out = run_process([az, "ad", "app", "create", "--display-name", f"bench-az-{i + 10}",
                                              "--query", "appId", "-o", "tsv"], env, work)
        assert code == 0, out
        app_id = re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", out)[-1]
        wall2, rss2, code, out = run_process([az, "ad", "app", "credential", "reset", "--id", app_id, "--append",
                                              "--query", "appId", "-o", "tsv"], env, work)
        assert code == 0, out
        graph, token = counts(emulator)
        return Sample(wall1 + wall2, max(rss1, rss2), graph, token)

    return measure(Row("az ad app create + credential reset --append", note="2 processes"), runs, 1, one)


def importtime(env: dict[str, str], work: Path, argv: list[str], top: int = 12) -> list[tuple[int, str]]:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "cypht_azure", *argv], env=env, cwd=work,
                          capture_output=True, text=True)
    rows = []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            parts = [p.strip() for p in line[len("import time:"):].split("|")]
            if parts[1].isdigit():
                rows.append((int(parts[1]), parts[2]))
    return sorted(rows, reverse=True)[:top]


def table(rows: list[Row]) -> str:
    head = ["scenario", "runs", "median s", "min s", "max s", "RSS MiB", "graph/token", "note"]
    cells = [head] + [r.cells() for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--apps", type=int, default=5000)
    parser.add_argument("--skip-azure-cli", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cypht-azure-bench-") as tmp, Emulator() as emulator:
        work = Path(tmp)
        (work / "home").mkdir()
        env = base_env(emulator, work / "home")
        rows = [
            bench_help(["--help"], args.runs, work, env),
            bench_help(["provision", "--help"], args.runs, work, env),
            bench_provision(emulator, args.runs, work, env, "fresh"),
            bench_provision(emulator, args.runs, work, env, "slow", latency=0.1),
            bench_rerun(emulator, args.runs, work, env, ["provision", "--url", "https://rerun.example.com"],
                        "provision (healthy re-run)"),
            bench_rerun(emulator, args.runs, work, env, ["rotate-secret", "--if-expiring-within", "30d"],
                        "rotate-secret --if-expiring-within 30d (nothing due)"),
            bench_status_all(emulator, args.runs, work, env, args.apps),
        ]
        if args.skip_azure_cli:
            rows.append(Row("az ad app create + credential reset --append", note="skipped (--skip-azure-cli)"))
        else:
            az, how = find_az(install=True)
            if az is None:
                rows.append(Row("az ad app create + credential reset --append", note=f"skipped: {how}"))
            else:
                try:
                    rows.append(bench_azure_cli(emulator, args.runs, work, az))
                except (AssertionError, ImportError, OSError) as exc:
                    rows.append(Row("az ad app create + credential reset --append", note=f"failed: {exc}"[:120]))
        print(table(rows))
        fresh, slow = rows[2], rows[3]
        if fresh.samples and slow.samples:
            reqs = statistics.median(s.graph + s.token for s in slow.samples) + 1  # + openid-configuration
            ideal = reqs * 0.1 + statistics.median(s.wall for s in fresh.samples)
            print(f"\n100 ms latency: median {statistics.median(s.wall for s in slow.samples):.3f} s vs "
                  f"(requests x latency) + start-up = {reqs:g} x 0.1 + {statistics.median(s.wall for s in fresh.samples):.3f}"
                  f" = {ideal:.3f} s")
        az_row = rows[-1]
        if fresh.samples and az_row.samples:
            ratio = statistics.median(s.wall for s in az_row.samples) / statistics.median(s.wall for s in fresh.samples)
            print(f"Azure CLI / cypht-azure (fresh provision): {ratio:.2f}x")
        print("\nSlowest imports, `provision --help` (cumulative us):")
        for us, name in importtime(env, work, ["provision", "--help"], 8):
            print(f"  {us:>8}  {name}")
        print("Slowest imports, fresh `provision` (cumulative us):")
        for us, name in importtime(env, work, ["provision", "--url", "https://imports.example.com", "--env-file",
                                                str(work / "imports.env"), "--no-verify", "--quiet"], 12):
            print(f"  {us:>8}  {name}")
        if args.json:
            args.json.write_text(json.dumps({r.name: [s.__dict__ for s in r.samples] for r in rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
