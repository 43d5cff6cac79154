"""One way to schedule rotation everywhere the docs show one: `rotate-secret --when-due`, twice a day.
The documented commands run against the emulator and do what the docs say."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.docs.test_examples import command_lines
from tests.tool.conftest import admin_env

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")),
         *sorted(p for p in (REPO / "docs" / "examples").iterdir() if p.is_file())]
CRON = re.compile(r"""(?:cron:\s*["']|^)(\S+ \S+ \* \* \*)(?=["'\s])""", re.M)


SCHEDULE_PAGES = {"README.md", "quickstart.md", "ci.md", "crontab", "github-rotate.yml", "gitlab-ci.yml",
                  "github-action.yml"}
ROTATION = re.compile(r"cypht-azure\s+rotate-secret\b[^\n`]*|command: rotate-secret\b[^\n`]*")


def _rotations() -> list[tuple[str, str]]:
    return [(page.name, match.group(0)) for page in PAGES
            for match in ROTATION.finditer(page.read_text(encoding="utf-8").replace("\\\n", " "))]


def test_every_documented_rotation_uses_when_due() -> None:
    rotations = _rotations()
    scheduled = [(page, line) for page, line in rotations if page in SCHEDULE_PAGES and "--sandbox" not in line]
    assert len(scheduled) >= 8, scheduled
    fixed = [f"{page}: {line}" for page, line in scheduled if "--when-due" not in line.split()]
    fixed += [f"{page}: {line}" for page, line in rotations if "--if-expiring-within" in line]
    assert not fixed, "schedule with --when-due, as README and docs/ci.md say:\n" + "\n".join(fixed)


def test_every_documented_schedule_runs_twice_a_day() -> None:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in CRON.finditer(text):
            found.append((page.name, match.group(1)))
    assert len(found) >= 4, found
    once = [f"{page}: {expr}" for page, expr in found if len(expr.split()[1].split(",")) != 2]
    assert not once, "rotation schedules run twice a day:\n" + "\n".join(once)


def test_quickstart_rotation_runs_as_documented(emulator: Any, tmp_path: Path) -> None:
    """quickstart.md's Docker rotation, right after its provision: nothing due, exit 0, file unchanged."""
    home = tmp_path / "home"
    home.mkdir()
    env = admin_env(emulator, home)
    text = (REPO / "docs" / "quickstart.md").read_text(encoding="utf-8")
    lines = [line for line in command_lines(text) if "./cypht.env" in line and "--sandbox" not in line]
    assert [shlex.split(line)[1] for line in lines] == ["provision", "rotate-secret"], lines
    for line in lines:
        run = subprocess.run([sys.executable, "-m", "cypht_azure", *shlex.split(line)[1:]], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert run.returncode == 0, f"{line}\n{run.stdout}\n{run.stderr}"
    assert "not due" in (run.stdout + run.stderr).lower(), run.stdout + run.stderr


CRON_LINE = re.compile(r"^(?:[\d*,/-]+[ \t]+){5}([a-z_][a-z0-9_-]*)[ \t]+(?:\S+/)?cypht-azure\s", re.M)


def test_every_documented_cron_line_runs_as_root() -> None:
    """The web server user owns .env and must never hold the tenant credential: a scheduled renewal is
    root's (docs/security.md, rule 2), in every crontab line the docs show."""
    found = [(page.name, match.group(1)) for page in PAGES
             for match in CRON_LINE.finditer(page.read_text(encoding="utf-8"))]
    assert len(found) >= 2, found
    others = [f"{page}: runs as {user}" for page, user in found if user != "root"]
    assert not others, "\n".join(others)
