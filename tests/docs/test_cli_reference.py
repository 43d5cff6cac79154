"""docs/reference/cli.md is generated from the Typer app; the committed file must match a fresh generation."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
GENERATOR = REPO / "docs" / "gen_cli_reference.py"
REFERENCE = REPO / "docs" / "reference" / "cli.md"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_cli_reference", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_reference_matches_the_cli() -> None:
    fresh = load_generator().render()
    committed = REFERENCE.read_text(encoding="utf-8")
    assert committed == fresh, (
        "docs/reference/cli.md is out of date: run `python docs/gen_cli_reference.py` and commit the result."
    )


def test_reference_lists_every_command_and_option() -> None:
    import typer

    from cypht_azure.cli import app

    text = REFERENCE.read_text(encoding="utf-8")
    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="cypht-azure")
    for name in root.list_commands(ctx):
        assert f"## `cypht-azure {name}`" in text
        command = root.get_command(ctx, name)
        commands = [(command, ctx)]
        if hasattr(command, "list_commands"):  # a group: its commands' options are in the reference too
            sub_ctx = command.context_class(command, info_name=name, parent=ctx)
            commands += [(command.get_command(sub_ctx, child), sub_ctx) for child in command.list_commands(sub_ctx)]
            for child in command.list_commands(sub_ctx):
                assert f"### `cypht-azure {name} {child}`" in text
        for param in [p for cmd, c in commands for p in cmd.get_params(c)]:
            if getattr(param, "param_type_name", "") != "option" or param.hidden or param.name == "help":
                continue
            for opt in param.opts:
                assert opt in text, f"{name}: {opt} is missing from the reference"
            for env in [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or []):
                assert f"`{env}`" in text, f"{name}: {env} is missing from the reference"
