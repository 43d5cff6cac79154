"""Developer sessions: `nox -s tests lint typecheck docs bench`."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

PY = ["3.11"]


@nox.session(python=PY)
def tests(session: nox.Session) -> None:
    """The test suite against the local emulator (php-cli + php-symfony-dotenv enable the loader tests)."""
    session.install("-e", ".[test]")
    session.run("pytest", "-n", "2", *session.posargs)


@nox.session(python=PY)
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.5")
    session.run("ruff", "check", "cypht_azure", "tests", "benchmarks", "noxfile.py")


@nox.session(python=PY)
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".", "mypy>=1.10")
    session.run("mypy", "cypht_azure")


@nox.session(python=PY)
def docs(session: nox.Session) -> None:
    """Build the documentation with warnings as errors."""
    session.install("-e", ".[docs]")
    session.run("python", "docs/gen_cli_reference.py")
    session.run("mkdocs", "build", "--strict", "--site-dir", "site")


@nox.session(python=PY)
def bench(session: nox.Session) -> None:
    """cypht-azure side by side with the Azure CLI on one emulator: ratios, CPU, peak memory, requests, imports.

    The Azure CLI is taken from .azcli/ (installed there as .ci/run does when missing) or $CYPHT_AZURE_AZ;
    `nox -s bench -- --skip-azure-cli` runs our side only, `-- --runs 9` for steadier medians.
    """
    session.install(".")  # the dependencies; run.py installs the tool itself into a separate venv, not editable
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session(python=PY)
def chaos(session: nox.Session) -> None:
    """The randomized fault loop, long: `nox -s chaos -- --iterations 500 --seed S` (`--budget SECONDS` to
    stop earlier, `--start I` to replay the episode of a failure at iteration I). Prints the figures."""
    import argparse

    parser = argparse.ArgumentParser(prog="nox -s chaos --")
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--seed", type=int, default=20261206)
    parser.add_argument("--budget", type=float, default=0.0, help="seconds; 0 for none")
    parser.add_argument("--start", type=int, default=0)
    args = parser.parse_args(session.posargs)
    session.install("-e", ".[test]")
    session.run("pytest", "-n", "0", "-s", "-q", "tests/guarantees/test_chaos.py", env={
        "CYPHT_AZURE_CHAOS_ITERATIONS": str(args.iterations), "CYPHT_AZURE_CHAOS_SEED": str(args.seed),
        "CYPHT_AZURE_CHAOS_BUDGET": str(args.budget), "CYPHT_AZURE_CHAOS_START": str(args.start)})
