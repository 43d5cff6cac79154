"""Plain-text help with options grouped by section (rich would double the start-up time)."""

from __future__ import annotations

from typing import Any

from typer.core import TyperCommand

OPTIONS = "Options"


class GroupedCommand(TyperCommand):
    """Lists options under the section named by their `rich_help_panel`, in order of appearance."""

    def format_options(self, ctx: Any, formatter: Any) -> None:
        sections: dict[str, list[tuple[str, str]]] = {OPTIONS: []}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            panel = getattr(param, "rich_help_panel", None) or OPTIONS
            sections.setdefault(panel, []).append(record)
        for title, records in sections.items():
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)
