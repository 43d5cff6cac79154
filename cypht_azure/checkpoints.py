"""Named step boundaries, so tests can kill the process exactly between two steps.

With CYPHT_AZURE_TEST_PAUSE_AT=<step> the process writes CYPHT_AZURE_TEST_PAUSE_FILE when it
reaches that step and then waits to be killed. Without it, a checkpoint costs one dict lookup.
"""

from __future__ import annotations

import os
import time

STEPS = (
    "started",           # cypht_azure.start: SIGTERM and SIGHUP handled, Ctrl-C caught; nothing else loaded yet
    "env-locked",        # .env parsed, found writable and locked; nothing in Graph yet
    "signed-in",
    "app-ready",         # registration created or repaired
    "secret-added",      # addPassword answered; .env not written yet
    "secret-verified",   # rotation: the token endpoint accepted the new secret
    "env-written",       # .env replaced (commit point of provision and rotate-secret); superseded secrets not removed yet
    "app-deleted",       # deprovision: the DELETE answered (its commit point); .env keys not removed yet
    "done",
)


def checkpoint(step: str) -> None:
    if os.environ.get("CYPHT_AZURE_TEST_PAUSE_AT") != step:
        return
    marker = os.environ.get("CYPHT_AZURE_TEST_PAUSE_FILE")
    if marker:
        with open(marker, "w") as handle:
            handle.write(step)
    while True:  # until the test kills us
        time.sleep(3600)
