"""Plain-text help with options grouped by section (rich would double the start-up time), examples that
are never rewrapped, and usage errors that --json reports as a JSON error object too."""

from __future__ import annotations

import inspect
import os
import re
import shlex
from collections.abc import Callable
from typing import Any, TypeVar

from typer._click.exceptions import UsageError
from typer.core import TyperCommand, TyperGroup

from cypht_azure.cli.common import ENV_PREFIX, error_document
from cypht_azure.cli.output import STDOUT

OPTIONS = "Options"
T = TypeVar("T")
TRUE_WORDS = frozenset({"1", "true", "yes", "y", "on", "t"})


def keep_examples(text: str) -> str:
    """Mark each indented paragraph (the examples) so that Click prints it as written.

    Click rewraps every paragraph to at most 78 columns, which splits a command line in two and
    turns the tail of a `# comment` into what looks like a command. Prose still wraps.
    """
    paragraphs = text.split("\n\n")
    return "\n\n".join("\b\n" + p if p.startswith((" ", "\t")) else p for p in paragraphs)


def json_requested(args: list[str]) -> bool:
    """--json on the command line (before any `--`) or CYPHT_AZURE_JSON set, as the option reads it."""
    words = args[: args.index("--")] if "--" in args else args
    return "--json" in words or os.environ.get(ENV_PREFIX + "JSON", "").strip().lower() in TRUE_WORDS


def report_usage_error(exc: UsageError, args: list[str], ctx: Any) -> None:
    """With --json a script reads stdout: give it the same JSON error object as for any other failure.
    Click still prints its usage message on stderr and exits 2."""
    if not json_requested(args):
        return
    hint = f"Run `{(exc.ctx or ctx).command_path} --help` for the options and what they accept."
    STDOUT.line(error_document("UsageError", exc.format_message(), hint, exc.exit_code))


def reporting(parse: Callable[[Any, list[str]], T], ctx: Any, args: list[str]) -> T:
    """Run a parsing step of Click; a usage error it raises is also reported as JSON under --json."""
    given = list(args)  # the parser consumes the list it is handed
    try:
        return parse(ctx, args)
    except UsageError as exc:
        report_usage_error(exc, given, ctx)
        raise


class GroupedCommand(TyperCommand):
    """Lists options under the section named by their `rich_help_panel`, in order of appearance."""

    def format_help_text(self, ctx: Any, formatter: Any) -> None:
        text = inspect.cleandoc(self.help or "").partition("\f")[0]
        if text:
            formatter.write_paragraph()
            with formatter.indentation():
                formatter.write_text(keep_examples(text))

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

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return reporting(super().parse_args, ctx, args)


class RootGroup(TyperGroup):
    """`cypht-azure`: an unknown command or option under --json also gets the JSON error object."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return reporting(super().parse_args, ctx, args)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        return reporting(super().resolve_command, ctx, args)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """A command this run did not register is loaded from its module when asked for (a suggestion
        naming another command needs that command's options)."""
        command = super().get_command(ctx, cmd_name)
        if command is None:
            from cypht_azure.cli import load_command

            command = load_command(cmd_name)
            if command is not None:
                self.add_command(command, cmd_name)
        return command


# --- commands suggested in messages keep the options this run was given --------------------------------

# Options that decide which tenant, emulator or file a suggested command acts on: a suggestion without
# them would act elsewhere (or on the real tenant after a --sandbox run).
CARRIED = ("sandbox", "sandbox_dir", "env_file", "tenant", "cloud", "authority_host", "graph_url", "ca_file", "auth")
_SUGGESTED = re.compile(r"cypht-azure (?P<command>[a-z][a-z-]*)(?P<args>[^`\n]*)")


def carried_options() -> list[tuple[str, str, str | None]]:
    """(parameter name, flag, value or None for a switch) of each CARRIED option this run took from its
    command line; options from the environment stay in the environment for the next command too."""
    from typer._click.core import ParameterSource
    from typer._click.globals import get_current_context

    ctx = get_current_context(silent=True)
    if ctx is None:
        return []
    found = []
    for param in ctx.command.params:
        if param.name in CARRIED and ctx.get_parameter_source(param.name) is ParameterSource.COMMANDLINE:
            value = ctx.params.get(param.name)
            if value in (None, False):
                continue
            found.append((param.name, param.opts[0], None if value is True else str(value)))
    return found


def accepted_options(command: str) -> set[str]:
    """The parameter names `cypht-azure COMMAND` takes (empty for an unknown command)."""
    from typer._click.globals import get_current_context

    ctx = get_current_context(silent=True)
    root = ctx.find_root() if ctx is not None else None
    if root is None or not hasattr(root.command, "get_command"):
        return set()
    sub = root.command.get_command(root, command)
    return {p.name for p in sub.params if p.name} if sub is not None else set()


def with_context(text: str, carried: list[tuple[str, str, str | None]]) -> str:
    """Add the carried options to every `cypht-azure COMMAND …` the text suggests, where that command
    takes them and the suggestion does not name them already."""
    if not carried or "cypht-azure " not in text:
        return text

    def extend(match: re.Match[str]) -> str:
        command, args = match.group("command"), match.group("args")
        accepted = accepted_options(command)
        extra = "".join(f" {flag}" + (f" {shlex.quote(value)}" if value is not None else "")
                        for name, flag, value in carried if name in accepted and flag not in args)
        if not extra:
            return match.group(0)
        quoted = text[match.end():match.end() + 1] == "`"
        core = args.rstrip()
        stop = "." if not quoted and core.endswith(".") else ""  # a sentence's full stop stays last
        return f"cypht-azure {command}{core[:len(core) - len(stop)]}{extra}{stop}{args[len(core):]}"

    return _SUGGESTED.sub(extend, text)
