"""The composite GitHub Action (`action.yml`): its inputs are documented, the command lines it runs are
accepted by the real CLI, and its shell steps do what they say when run by bash as a runner would."""

from __future__ import annotations

import http.server
import json
import os
import re
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.docs.test_examples import check_command, split

REPO = Path(__file__).resolve().parents[2]
ACTION = yaml.safe_load((REPO / "action.yml").read_text(encoding="utf-8"))
EXAMPLE = REPO / "docs" / "examples" / "github-action.yml"
CI_PAGE = (REPO / "docs" / "ci.md").read_text(encoding="utf-8")


def step(name: str) -> dict[str, Any]:
    return next(s for s in ACTION["runs"]["steps"] if s["name"].startswith(name))


def run_step(name: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """As a runner does: `bash --noprofile --norc -eo pipefail script`, with the step's env."""
    script = tmp_path / "step.sh"
    script.write_text(step(name)["run"])
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], env=env,
                          capture_output=True, text=True, timeout=60)


def runner_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    for name in ("temp", "env", "output"):
        (tmp_path / name).mkdir(exist_ok=True)
    return {"PATH": os.environ["PATH"], "RUNNER_TEMP": str(tmp_path / "temp"),
            "GITHUB_ENV": str(tmp_path / "env" / "file"), "GITHUB_OUTPUT": str(tmp_path / "output" / "file"),
            "GITHUB_ACTION_PATH": str(REPO), **extra}


def test_action_is_composite_with_documented_inputs() -> None:
    assert ACTION["runs"]["using"] == "composite"
    assert all(s.get("shell") == "bash" for s in ACTION["runs"]["steps"] if "run" in s)
    for name, spec in ACTION["inputs"].items():
        row = re.search(rf"^\| `{re.escape(name)}` \| (yes|no) \| *`?([^|`]*?)`? *\|", CI_PAGE, re.M)
        assert row, f"input {name} is not in the table of docs/ci.md"
        assert (row.group(1) == "yes") == bool(spec.get("required"))
        assert row.group(2).strip() == str(spec.get("default", "")).strip()
    assert "exit-code" in ACTION["outputs"]


def test_action_installs_from_its_own_checkout_and_signs_in_with_workload_identity() -> None:
    assert '"$GITHUB_ACTION_PATH"' in step("Install")["run"]
    assert step("Run cypht-azure")["env"]["CYPHT_AZURE_AUTH"] == "workload-identity"
    assert step("Remove the OIDC token")["if"] == "always()"


def test_default_command_is_accepted() -> None:
    check_command(["cypht-azure", *split(ACTION["inputs"]["command"]["default"]), "--auth", "workload-identity"])


def example_uses() -> list[dict[str, Any]]:
    doc = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    return [s for job in doc["jobs"].values() for s in job["steps"] if "cypht-azure" in str(s.get("uses", ""))]


@pytest.mark.parametrize("use", example_uses(), ids=lambda s: s["with"]["command"])
def test_example_commands_are_accepted_and_inputs_exist(use: dict[str, Any]) -> None:
    assert set(use["with"]) <= set(ACTION["inputs"])
    assert {n for n, s in ACTION["inputs"].items() if s.get("required")} <= set(use["with"])
    check_command(["cypht-azure", *split(use["with"]["command"])])


def test_example_is_shown_in_the_docs_as_it_is() -> None:
    assert f"```yaml\n{EXAMPLE.read_text(encoding='utf-8')}```" in CI_PAGE
    assert yaml.safe_load(EXAMPLE.read_text())["permissions"]["id-token"] == "write"


def test_run_step_splits_like_a_shell_and_expands_nothing(tmp_path: Path) -> None:
    fake = tmp_path / "fake-cypht-azure"
    seen = tmp_path / "args.json"
    fake.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                    f"json.dump({{'argv': sys.argv[1:], 'env_file': os.environ.get('CYPHT_AZURE_ENV_FILE'), "
                    f"'auth': os.environ.get('CYPHT_AZURE_AUTH')}}, open({str(seen)!r}, 'w'))\nsys.exit(6)\n")
    fake.chmod(0o755)
    marker = tmp_path / "pwned"
    env = runner_env(tmp_path, CYPHT_AZURE_BIN=str(fake), CYPHT_AZURE_PYTHON=sys.executable,
                     CYPHT_AZURE_COMMAND=f'rotate-secret --when-due --deploy-hook "systemctl reload php-fpm" '
                                         f'$(touch {marker}) $HOME *',
                     ENV_FILE="/srv/cypht/.env", CYPHT_AZURE_AUTH="workload-identity")
    result = run_step("Run cypht-azure", env, tmp_path)
    assert result.returncode == 6, result.stderr
    assert json.loads(seen.read_text()) == {
        "argv": ["rotate-secret", "--when-due", "--deploy-hook", "systemctl reload php-fpm",
                 "$(touch", f"{marker})", "$HOME", "*"],
        "env_file": "/srv/cypht/.env", "auth": "workload-identity"}
    assert not marker.exists()
    assert (tmp_path / "output" / "file").read_text() == "exit-code=6\n"


def test_token_step_writes_a_private_token_file(tmp_path: Path) -> None:
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path + " " + self.headers.get("Authorization", ""))
            body = json.dumps({"value": "header.payload.signature"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = runner_env(tmp_path, AUDIENCE="api://AzureADTokenExchange",
                         ACTIONS_ID_TOKEN_REQUEST_URL=f"http://127.0.0.1:{server.server_address[1]}/token?x=1",
                         ACTIONS_ID_TOKEN_REQUEST_TOKEN="request-token")
        result = run_step("Write GitHub's OIDC token", env, tmp_path)
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stderr
    assert asked == ["/token?x=1&audience=api://AzureADTokenExchange bearer request-token"]
    token = tmp_path / "temp" / "cypht-azure-federated-token"
    assert token.read_text() == "header.payload.signature"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert (tmp_path / "env" / "file").read_text() == f"AZURE_FEDERATED_TOKEN_FILE={token}\n"


def test_token_step_without_id_token_permission_says_so(tmp_path: Path) -> None:
    result = run_step("Write GitHub's OIDC token", runner_env(tmp_path, AUDIENCE="x"), tmp_path)
    assert result.returncode == 2 and "id-token: write" in result.stderr
