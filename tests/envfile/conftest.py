"""Cypht's real loader (php-cli + Debian's php-symfony-dotenv) for the envfile tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

AUTOLOAD = Path("/usr/share/php/Symfony/Component/Dotenv/autoload.php")

# Loads each file as Cypht does (usePutenv + load) and reports every variable it set, then unsets
# them so the next file starts from a clean environment. Paths come in through a JSON file.
HARNESS = r"""<?php
require $argv[1];
$jobs = json_decode(file_get_contents($argv[2]), true);
$results = [];
foreach ($jobs as $path) {
    try {
        $d = new \Symfony\Component\Dotenv\Dotenv();
        $d->usePutenv(true);
        $d->load($path);
        $names = array_filter(explode(',', (string) getenv('SYMFONY_DOTENV_VARS')), 'strlen');
        $vars = [];
        foreach ($names as $name) { $v = getenv($name); $vars[$name] = ($v === false) ? null : $v; }
        $results[] = ['ok' => true, 'vars' => (object) $vars];
    } catch (\Throwable $e) {
        $names = [];
        $results[] = ['ok' => false, 'error' => get_class($e) . ': ' . strtok($e->getMessage(), "\n")];
    }
    foreach (array_merge($names, ['SYMFONY_DOTENV_VARS']) as $name) {
        putenv($name); unset($_ENV[$name], $_SERVER[$name]);
    }
}
file_put_contents($argv[3], json_encode($results));
"""

PhpLoad = Callable[[list[Path]], list[dict[str, Any]]]


@pytest.fixture(scope="session")
def php_load(tmp_path_factory: pytest.TempPathFactory) -> PhpLoad:
    """Load many .env files with symfony/dotenv in ONE php process; one result per file."""
    php = shutil.which("php")
    if php is None or not AUTOLOAD.is_file():
        reason = f"php-cli and php-symfony-dotenv ({AUTOLOAD}) are needed to run Cypht's loader"
        if os.environ.get("CYPHT_AZURE_REQUIRE_PHP") == "1":
            pytest.fail(reason + " and CYPHT_AZURE_REQUIRE_PHP=1")
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("php")
    harness = work / "harness.php"
    harness.write_text(HARNESS)

    def run(paths: list[Path]) -> list[dict[str, Any]]:
        jobs, out = work / "jobs.json", work / "results.json"
        jobs.write_text(json.dumps([str(p) for p in paths]))
        out.unlink(missing_ok=True)
        # an empty environment: $VAR expansions then see only the file, as parse() does by default
        proc = subprocess.run(
            [php, "-d", "display_errors=stderr", str(harness), str(AUTOLOAD), str(jobs), str(out)],
            env={}, capture_output=True, text=True, timeout=60, check=False,
        )
        assert proc.returncode == 0, proc.stderr
        results: list[dict[str, Any]] = json.loads(out.read_text())
        assert len(results) == len(paths)
        return results

    return run
