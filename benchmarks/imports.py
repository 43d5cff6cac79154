"""`python -X importtime`: what a command loads, the ten slowest imports and the heaviest packages."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path


def importtime(argv: Callable[[int], list[str]], env: dict[str, str], cwd: Path,
               runs: int = 3, python: str = sys.executable) -> list[tuple[str, int, int]]:
    """(module, self us, cumulative us) for every import of `python -m cypht_azure ARGV`: the least of
    `runs` runs per module, as a busy machine only ever adds time."""
    best: dict[str, tuple[int, int]] = {}
    for run in range(runs):
        proc = subprocess.run([python, "-X", "importtime", "-m", "cypht_azure", *argv(run)], env=env,
                              cwd=cwd, capture_output=True, text=True)
        for line in proc.stderr.splitlines():
            if line.startswith("import time:") and "|" in line:
                own, cumulative, name = (p.strip() for p in line[len("import time:"):].split("|"))
                if own.isdigit():
                    old = best.get(name, (int(own), int(cumulative)))
                    best[name] = (min(old[0], int(own)), min(old[1], int(cumulative)))
    return [(name, own, cumulative) for name, (own, cumulative) in best.items()]


def summary(title: str, rows: list[tuple[str, int, int]]) -> list[str]:
    lines = [f"{title}: {len(rows)} modules, {sum(r[1] for r in rows) / 1000:.0f} ms of import time (sum of self times)",
             "  ten slowest imports (cumulative ms, self ms):"]
    for name, own, cumulative in sorted(rows, key=lambda r: -r[2])[:10]:
        lines.append(f"    {cumulative / 1000:7.1f} {own / 1000:6.1f}  {name}")
    packages: Counter[str] = Counter()
    modules: Counter[str] = Counter()
    for name, own, _ in rows:
        packages[name.split(".")[0]] += own
        modules[name.split(".")[0]] += 1
    lines.append("  ten heaviest packages (sum of self ms, modules):")
    for package, own in packages.most_common(10):
        lines.append(f"    {own / 1000:7.1f} {modules[package]:4}  {package}")
    return lines


def import_report(env: dict[str, str], work: Path, python: str = sys.executable) -> list[str]:
    def provision(run: int) -> list[str]:
        return ["provision", "--url", f"https://imports-{run}.example.com", "--env-file",
                str(work / f"imports-{run}.env"), "--no-verify", "--quiet"]

    return [
        *summary("`cypht-azure --help`", importtime(lambda _: ["--help"], env, work, python=python)),
        *summary("`cypht-azure provision --help`", importtime(lambda _: ["provision", "--help"], env, work,
                                                              python=python)),
        *summary("`cypht-azure provision` (fresh)", importtime(provision, env, work, python=python)),
        "  (provision imports on two threads, sign-in's azure-identity and the Graph stack, so self times include "
        "time spent waiting for the other thread's imports)",
    ]
