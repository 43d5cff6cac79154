"""The randomized fault loop (tests/guarantees/chaos.py): seeded, bounded, replayable.

The default run (CI) uses a fixed seed and about a minute; `nox -s chaos -- --iterations 500 --seed S`
runs it long. Environment: CYPHT_AZURE_CHAOS_SEED, CYPHT_AZURE_CHAOS_ITERATIONS,
CYPHT_AZURE_CHAOS_BUDGET (seconds; 0 for none), CYPHT_AZURE_CHAOS_START (the iteration to start at, to
replay an episode) and CYPHT_AZURE_CHAOS_REPORT (a file to write the figures to).
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.guarantees.chaos import run_loop

CI_SEED = 20261206
CI_BUDGET = 55.0


def test_random_faults_never_break_the_invariant() -> None:
    seed = int(os.environ.get("CYPHT_AZURE_CHAOS_SEED") or CI_SEED)
    iterations = int(os.environ.get("CYPHT_AZURE_CHAOS_ITERATIONS") or 1000)
    budget = float(os.environ.get("CYPHT_AZURE_CHAOS_BUDGET") or CI_BUDGET) or None
    start = int(os.environ.get("CYPHT_AZURE_CHAOS_START") or 0)
    stats = run_loop(seed=seed, iterations=iterations, budget=budget, start=start)
    report = stats.report(seed)
    print(report)
    if os.environ.get("CYPHT_AZURE_CHAOS_REPORT"):
        Path(os.environ["CYPHT_AZURE_CHAOS_REPORT"]).write_text(report + "\n")
    assert stats.iterations > 0
    assert not stats.violations, report
