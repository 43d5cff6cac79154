"""The deploy-hook recipes of docs/ci.md (docs/examples/deploy-hooks/), run as cypht-azure runs hooks,
against stand-ins for docker, kubectl and systemctl that record how they were called (the real tools
and a cluster are not here). The recipes are shown in the docs as they are."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cypht_azure.operations.unattended import hooks

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "docs" / "examples" / "deploy-hooks"
CI_PAGE = (REPO / "docs" / "ci.md").read_text(encoding="utf-8")
SECRET = "Q8x~recipe-test-secret-value.0123456789"

STAND_IN = f"""#!{sys.executable}
import json, os, sys
stdin = "" if sys.stdin.isatty() else sys.stdin.read()
with open(os.environ["DOCKER_CONFIG"], "a") as log:  # a variable hooks pass through
    log.write(json.dumps({{"tool": os.path.basename(sys.argv[0]), "argv": sys.argv[1:], "cwd": os.getcwd(),
                          "stdin": stdin}}) + "\\n")
if "create" in sys.argv[1:4]:
    print("apiVersion: v1\\nkind: Secret\\nmetadata: {{name: cypht-env}}")
"""


@pytest.fixture
def tools(tmp_path: Path) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("docker", "kubectl", "systemctl"):
        (folder / name).write_text(STAND_IN)
        (folder / name).chmod(0o755)
    return folder


def run_recipe(name: str, tmp_path: Path, tools: Path) -> list[dict[str, object]]:
    env_file = tmp_path / "srv" / "cypht" / "cypht.env"
    env_file.parent.mkdir(parents=True)
    env_file.write_text(f"OUTLOOK_CLIENT_ID=app\nOUTLOOK_CLIENT_SECRET={SECRET}\n")
    calls = tmp_path / "calls.jsonl"
    facts = hooks.HookEnv(env_file, "app", "new-key", ("old-key",), "2027-01-01T00:00:00Z")
    environ = {"PATH": f"{tools}:/usr/bin:/bin", "HOME": str(tmp_path)}
    folder = tmp_path / "deploy-hooks.d"
    folder.mkdir()
    (folder / f"50-{name}").write_bytes((RECIPES / name).read_bytes())
    (folder / f"50-{name}").chmod(0o755)
    found = hooks.collect([], folder)
    hooks.validate(found, folder, environ)
    # the stand-ins find their log through DOCKER_CONFIG, one of the variables hooks get
    report = hooks.run_all(found, facts, environ={**environ, "DOCKER_CONFIG": str(calls)}, timeout=30)
    assert report.ok, [r.describe() + r.output for r in report.runs]
    return [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []


@pytest.mark.parametrize("name", ["docker-compose", "kubernetes", "php-fpm"])
def test_recipe_is_valid_sh_and_shown_in_the_docs(name: str) -> None:
    assert subprocess.run(["sh", "-n", str(RECIPES / name)]).returncode == 0
    assert (RECIPES / name).stat().st_mode & 0o111
    assert f"```sh\n{(RECIPES / name).read_text()}```" in CI_PAGE


def test_docker_compose_recipe_recreates_the_service(tmp_path: Path, tools: Path) -> None:
    calls = run_recipe("docker-compose", tmp_path, tools)
    assert [(c["tool"], c["argv"], c["cwd"]) for c in calls] == [
        ("docker", ["compose", "up", "-d", "cypht"], str(tmp_path / "srv" / "cypht"))]


def test_kubernetes_recipe_pipes_the_secret_and_restarts(tmp_path: Path, tools: Path) -> None:
    calls = run_recipe("kubernetes", tmp_path, tools)
    env_file = tmp_path / "srv" / "cypht" / "cypht.env"
    assert [c["argv"] for c in calls] == [
        ["-n", "cypht", "create", "secret", "generic", "cypht-env", f"--from-env-file={env_file}",
         "--dry-run=client", "-o", "yaml"],
        ["-n", "cypht", "apply", "-f", "-"],
        ["-n", "cypht", "rollout", "restart", "deployment/cypht"],
        ["-n", "cypht", "rollout", "status", "deployment/cypht", "--timeout=300s"],
    ]
    assert "kind: Secret" in str(calls[1]["stdin"])
    assert not any(SECRET in " ".join(c["argv"]) for c in calls)   # type: ignore[arg-type]


def test_php_fpm_recipe_reloads(tmp_path: Path, tools: Path) -> None:
    calls = run_recipe("php-fpm", tmp_path, tools)
    assert [(c["tool"], c["argv"]) for c in calls] == [("systemctl", ["reload", "php8.2-fpm"])]


def test_compose_snippet_in_the_docs_uses_env_file() -> None:
    block = CI_PAGE.split("```yaml\nservices:\n", 1)[1].split("```", 1)[0]
    doc = yaml.safe_load("services:\n" + block)
    assert doc["services"]["cypht"]["env_file"]
