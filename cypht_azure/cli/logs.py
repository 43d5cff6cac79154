"""Logging for --verbose and CYPHT_AZURE_DEBUG, loaded only when a command runs (not for --help)."""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cypht_azure.cli.common import Common


class RedactingFilter(logging.Filter):
    """Last line of defence for --verbose: bearer tokens and JWTs never reach a log line."""

    _patterns = (
        re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
        re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
        re.compile(r"(?i)(client_secret=)[^&\s]+"),
        re.compile(r'(?i)("secretText"\s*:\s*")[^"]*'),
    )

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        for pattern in self._patterns:
            message = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "<redacted>", message)
        record.msg, record.args = message, None
        return True


def configure_logging(common: Common) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    debug = os.environ.get("CYPHT_AZURE_DEBUG") == "1"
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    if not debug:
        # azure-identity logs each failed attempt while a new secret replicates; our own
        # messages say what matters.
        for noisy in ("azure", "msal", "httpx", "httpcore", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
    if common.verbose or debug:
        logging.getLogger("cypht_azure").setLevel(logging.DEBUG if debug else logging.INFO)
