"""Optional programs some tests need: skipped without them on a plain machine, required in CI."""

from __future__ import annotations

import os
import shutil

import pytest

ACL_TOOLS = ("setfacl", "getfacl", "setfattr", "getfattr")  # Debian's `acl` and `attr` packages


def require_acl_tools() -> None:
    """Skip (or fail, with CYPHT_AZURE_REQUIRE_ACL=1 as .ci/run sets) when acl/attr are missing."""
    missing = [tool for tool in ACL_TOOLS if shutil.which(tool) is None]
    if not missing:
        return
    message = f"{', '.join(missing)} not installed (Debian's `acl` and `attr` packages)"
    if os.environ.get("CYPHT_AZURE_REQUIRE_ACL") == "1":
        pytest.fail(message + " (CYPHT_AZURE_REQUIRE_ACL=1)")
    pytest.skip(message)
