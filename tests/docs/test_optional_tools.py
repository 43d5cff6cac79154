"""The README's test command on a plain machine: the tests that need Debian's `acl` and `attr`
skip without them (like the other optional tools), fail without them in CI, and the README says so."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.optional_tools import ACL_TOOLS

REPO = Path(__file__).resolve().parents[2]
ACL_TESTS = [
    "tests/envfile/test_envfile_disk.py::test_extended_attributes_and_acl_are_copied",
    "tests/guarantees/test_env_on_disk.py::test_acls_and_extended_attributes_are_kept",
    "tests/guarantees/test_env_on_disk.py::test_attribute_that_cannot_be_copied_is_refused_before_any_request",
]


def _path_without_acl_tools(tmp_path: Path) -> str:
    """A PATH holding every program of today's PATH but setfacl, getfacl, setfattr and getfattr."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not folder or not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            target = Path(folder) / name
            if name in ACL_TOOLS or (bin_dir / name).exists() or not os.access(target, os.X_OK):
                continue
            (bin_dir / name).symlink_to(target)
    return str(bin_dir)


def _pytest(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CYPHT_AZURE_REQUIRE_")}
    env.update(PATH=_path_without_acl_tools(tmp_path), **extra)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", "-rs",
                           *ACL_TESTS], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_acl_tests_skip_without_acl_and_attr_and_fail_when_required(tmp_path: Path) -> None:
    plain = _pytest(tmp_path)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    summary = plain.stdout.strip().splitlines()[-1]
    assert re.search(r"\b4 skipped\b", summary) and "passed" not in summary and "failed" not in summary, \
        plain.stdout
    assert "FileNotFoundError" not in plain.stdout and "`acl` and `attr`" in plain.stdout
    required = _pytest(tmp_path, CYPHT_AZURE_REQUIRE_ACL="1")
    assert required.returncode == 1 and re.search(r"\b4 failed\b", required.stdout), required.stdout


def test_ci_requires_them_and_the_readme_names_them() -> None:
    assert re.search(r"^export CYPHT_AZURE_REQUIRE_ACL=1$", (REPO / ".ci" / "run").read_text(), re.M)
    readme = " ".join((REPO / "README.md").read_text().split())
    assert "ACLs and extended attributes `acl attr`" in readme
