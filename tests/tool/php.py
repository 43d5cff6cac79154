"""Load a `.env` with Cypht's real loader (symfony/dotenv under php-cli), as Cypht does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

AUTOLOAD = "/usr/share/php/Symfony/Component/Dotenv/autoload.php"

SCRIPT = r"""
require '%s';
$d = new \Symfony\Component\Dotenv\Dotenv();
$d->usePutenv(true);
$d->load($argv[1]);
$out = [];
foreach (explode(',', $argv[2]) as $k) { $v = getenv($k); $out[$k] = ($v === false) ? null : $v; }
echo json_encode($out);
"""


def require_php() -> None:
    if shutil.which("php") and os.path.isfile(AUTOLOAD):
        return
    message = "php-cli and php-symfony-dotenv are needed to load .env with Cypht's loader"
    if os.environ.get("CYPHT_AZURE_REQUIRE_PHP") == "1":
        pytest.fail(message + " (CYPHT_AZURE_REQUIRE_PHP=1)")
    pytest.skip(message)


def load_with_symfony(path: Path, keys: list[str], environ: dict[str, str] | None = None) -> dict[str, str | None]:
    """getenv() of each key after Cypht's loader ran, in this environment (default: ours, minus the keys)."""
    require_php()
    env = {k: v for k, v in os.environ.items() if k not in keys} if environ is None else {"PATH": "/usr/bin:/bin",
                                                                                           **environ}
    proc = subprocess.run(
        ["php", "-r", SCRIPT % AUTOLOAD, str(path), ",".join(keys)],
        capture_output=True, text=True, timeout=30, env=env,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    result: dict[str, str | None] = json.loads(proc.stdout)
    return result
