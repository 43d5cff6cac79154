"""Every `cypht-azure` command shown in the docs and the CI examples is one the CLI accepts,
and the sandbox commands in the docs really run."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from cypht_azure import cypht
from cypht_azure.auth import AUTH_METHODS
from cypht_azure.cli import app
from cypht_azure.durations import parse_duration

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
EXAMPLES = DOCS / "examples"
YAML_EXAMPLES = ["github-rotate.yml", "gitlab-ci.yml"]
SH_BLOCK = re.compile(r"^```(?:sh|bash|shell)\n(.*?)^```", re.M | re.S)
DURATION_OPTIONS = {"secret_lifetime", "if_expiring_within", "fail_within"}


def command_lines(script: str) -> Iterator[str]:
    """The shell lines of `script` (continuations joined) that run cypht-azure."""
    for line in script.replace("\\\n", " ").splitlines():
        text = line.strip()
        match = re.search(r"(?:^|[;&|(]\s*)(cypht-azure\s.*)$", text)
        if match:
            yield match.group(1)


def yaml_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from yaml_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from yaml_strings(value)


def example_commands() -> list[tuple[str, str]]:
    found = []
    for name in YAML_EXAMPLES:
        doc = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))
        for text in yaml_strings(doc):
            found += [(name, line) for line in command_lines(text)]
    for line in (EXAMPLES / "crontab").read_text(encoding="utf-8").splitlines():
        if not line.startswith("#") and " cypht-azure " in line:
            found.append(("crontab", line[line.index("cypht-azure "):]))
    return found


def doc_blocks() -> list[tuple[str, str]]:
    blocks = []
    for page in sorted(DOCS.rglob("*.md")):
        for block in SH_BLOCK.findall(page.read_text(encoding="utf-8")):
            blocks.append((str(page.relative_to(DOCS)), block))
    return blocks


def doc_commands() -> list[tuple[str, str]]:
    return [(page, line) for page, block in doc_blocks() for line in command_lines(block)]


def split(line: str) -> list[str]:
    return shlex.split(line, comments=True)


def check_command(args: list[str]) -> dict[str, Any]:
    """Parse like the CLI does (raising on any error), then check the values the parser takes as text."""
    assert args[0] == "cypht-azure", args
    root = typer.main.get_command(app)
    parent = root.context_class(root, info_name="cypht-azure")
    assert len(args) > 1 and args[1] in root.list_commands(parent), f"unknown command in {args}"
    command = root.get_command(parent, args[1])
    ctx = command.make_context(args[1], list(args[2:]), parent=parent, resilient_parsing=False)
    params = ctx.params
    for name in DURATION_OPTIONS:
        if params.get(name):
            parse_duration(params[name], option=name)
    if params.get("auth"):
        assert params["auth"] in AUTH_METHODS
    if params.get("provider"):
        cypht.parse_providers(params["provider"])
    if params.get("audience"):
        cypht.parse_audience(params["audience"])
    if params.get("url") and "$" not in params["url"]:
        cypht.redirect_uri_for(params["url"])
    if params.get("cloud"):
        assert params["cloud"] in ("public", "usgov", "china")
    return params


@pytest.fixture(autouse=True)
def _no_cli_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(("CYPHT_AZURE_", "AZURE_")) or key == "CYPHT_DOTENV":
            monkeypatch.delenv(key)


def test_yaml_examples_parse_and_run_cypht_azure() -> None:
    names = {name for name, _ in example_commands()}
    assert names == {*YAML_EXAMPLES, "crontab"}


@pytest.mark.parametrize(("source", "line"), example_commands())
def test_example_command_is_accepted(source: str, line: str) -> None:
    check_command(split(line))


def test_github_example_uses_workload_identity() -> None:
    doc = yaml.safe_load((EXAMPLES / "github-rotate.yml").read_text(encoding="utf-8"))
    assert doc["permissions"]["id-token"] == "write"
    steps = doc["jobs"]["rotate"]["steps"]
    assert not any("azure/login" in str(step.get("uses", "")) for step in steps)
    script = "\n".join(str(step.get("run", "")) for step in steps)
    assert "audience=api://AzureADTokenExchange" in script
    assert "AZURE_FEDERATED_TOKEN_FILE" in script
    commands = [split(line) for line in command_lines(script)]
    assert any(c[1] == "rotate-secret" and "--when-due" in c for c in commands)
    assert any(c[1] == "status" and "--fail-within" in c for c in commands)


def test_gitlab_example_requests_an_id_token_for_entra() -> None:
    doc = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text(encoding="utf-8"))
    job = doc["cypht-secret"]
    assert job["id_tokens"]["AZURE_ID_TOKEN"]["aud"] == "api://AzureADTokenExchange"
    assert "AZURE_FEDERATED_TOKEN_FILE" in job["variables"]


@pytest.mark.parametrize(("page", "line"), doc_commands())
def test_doc_command_is_accepted(page: str, line: str) -> None:
    check_command(split(line))


def test_checker_rejects_wrong_commands() -> None:
    for line in ["cypht-azure provison --url https://x.example", "cypht-azure status --fail-within",
                 "cypht-azure rotate-secret --if-expiring-within soon", "cypht-azure status --no-such-option",
                 "cypht-azure provision --url https://x.example/?page=home", "cypht-azure status --auth magic"]:
        with pytest.raises(Exception):  # noqa: B017 - parser errors, ValueError, AssertionError alike
            check_command(split(line))


def sandbox_available() -> str | None:
    try:
        from cypht_azure.emulator import Emulator  # noqa: F401
    except ImportError as exc:
        return f"the embedded emulator cannot be imported yet ({exc})"
    try:
        import cypht_azure.envfile  # noqa: F401
    except ImportError as exc:
        return f"cypht_azure.envfile cannot be imported yet ({exc})"
    return None


def sandbox_pages() -> list[tuple[str, list[str]]]:
    pages: dict[str, list[str]] = {}
    for page, block in doc_blocks():
        if "--sandbox" in block:
            pages.setdefault(page, []).extend(line for line in command_lines(block) if "--sandbox" in line)
    return sorted(pages.items())


def test_docs_show_sandbox_commands() -> None:
    assert any(page == "quickstart.md" for page, _ in sandbox_pages())


@pytest.mark.slow
@pytest.mark.parametrize(("page", "lines"), sandbox_pages())
def test_sandbox_commands_run(page: str, lines: list[str], tmp_path: Path) -> None:
    reason = sandbox_available()
    if reason:
        pytest.skip(reason)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AZURE_", "CYPHT_AZURE_", "MSAL_", "IDENTITY_", "MSI_")) and k != "CYPHT_DOTENV"}
    env.update(HOME=str(tmp_path), XDG_STATE_HOME=str(tmp_path / "state"), NO_COLOR="1")
    shown = ""
    for line in lines:
        args = split(line)
        result = subprocess.run([sys.executable, "-m", "cypht_azure", *args[1:]], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, f"{page}: {line}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        shown += result.stdout + result.stderr
    secrets = [value for env_file in tmp_path.glob("*.env")
               for key, _, value in (ln.partition("=") for ln in env_file.read_text().splitlines())
               if key.endswith("_CLIENT_SECRET") and value.strip("'\"")]
    for value in secrets:
        assert value.strip("'\"") not in shown, f"{page}: a client secret was printed"


def test_ci_page_shows_the_github_example_as_it_is() -> None:
    page = (DOCS / "ci.md").read_text(encoding="utf-8")
    example = (EXAMPLES / "github-rotate.yml").read_text(encoding="utf-8")
    assert f"```yaml\n{example}```" in page
