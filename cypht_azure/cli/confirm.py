"""Asking before a change that needs confirmation (deprovision, a changed URL in provision)."""

from __future__ import annotations

import sys
from collections.abc import Callable

import typer

from cypht_azure.cli.common import Output


def confirmer(out: Output) -> Callable[[str], bool] | None:
    """A yes/no question on the terminal, or None without one (the command then needs --yes: exit 7).
    The live progress line is erased first, so the plan in the question starts on a line of its own."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return None

    def ask(question: str) -> bool:
        out.finish()
        return typer.confirm(question, default=False, err=True)

    return ask
