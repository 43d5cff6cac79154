"""Point the real Azure CLI at a running emulator (the recipe in docs/emulator.md).

`az` takes Microsoft Graph's base URL from its cloud's `microsoft_graph_resource_id` and asks for a
token for that same resource, so every endpoint of the registered cloud is the emulator's base URL.
MSAL's instance discovery must be off (`core.instance_discovery=false`), `REQUESTS_CA_BUNDLE`
trusts the emulator's CA, and `--allow-no-subscriptions` lets `az login` accept ARM's empty list.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def az_environment(emulator: Any, config_dir: Path, az: str) -> tuple[dict[str, str], list[list[str]]]:
    """The environment for `az`, and the commands that register the emulator as a cloud and sign in."""
    info = emulator.info
    base = info["authority_host"].rstrip("/")
    config_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
    env.update({
        "AZURE_CONFIG_DIR": str(config_dir),
        "REQUESTS_CA_BUNDLE": info["ca_file"],
        "AZURE_CORE_COLLECT_TELEMETRY": "false",
        "AZURE_CORE_ONLY_SHOW_ERRORS": "true",
        "AZURE_CORE_NO_COLOR": "true",
        # The emulator's own administrator: not a real secret, so it may be an argument here.
        "AZURE_CLIENT_SECRET": info["admin_client_secret"],
    })
    setup = [
        [az, "config", "set", "core.instance_discovery=false"],
        [az, "cloud", "register", "--name", "CyphtAzureEmulator", "--skip-endpoint-discovery",
         "--endpoint-active-directory", base,
         "--endpoint-active-directory-resource-id", base + "/",
         "--endpoint-active-directory-graph-resource-id", base + "/",
         "--endpoint-resource-manager", base + "/",
         "--endpoint-microsoft-graph-resource-id", base + "/"],
        [az, "cloud", "set", "--name", "CyphtAzureEmulator"],
        [az, "login", "--service-principal", "--username", info["admin_client_id"],
         "--password", info["admin_client_secret"], "--tenant", info["tenant_id"], "--allow-no-subscriptions"],
    ]
    return env, setup
