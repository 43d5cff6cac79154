"""provision on the .env files admins really have: every untouched line stays byte-for-byte."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.tool.conftest import Cli
from tests.tool.php import load_with_symfony
from tests.tool.test_provision import CYPHT_KEYS, REDIRECT, provision, read_env

VARIANTS: dict[str, bytes] = {
    "comments-and-blanks": b"# Cypht configuration\n\nAPP_NAME=Cypht   # trailing comment\n\n#aoutlook\nOUTLOOK_CLIENT_ID=\n",
    "crlf": b"APP_NAME=Cypht\r\n# comment\r\nOUTLOOK_CLIENT_ID=\r\nOUTLOOK_CLIENT_URI=http://localhost/?page=home\r\n",
    "export": b"export APP_NAME=Cypht\nexport OUTLOOK_CLIENT_SECRET=\nexport OFFICE365_CLIENT_URI='x'\n",
    "quotes": b"APP_NAME=\"Cypht Mail\"\nLDAP_USER=''\nOUTLOOK_CLIENT_ID=\"\"\nOFFICE365_CLIENT_SECRET='old'\n",
    "duplicates": b"OUTLOOK_CLIENT_URI=http://a/\nAPP_NAME=Cypht\nOUTLOOK_CLIENT_URI=http://b/\n",
    "no-final-newline": b"APP_NAME=Cypht\nOUTLOOK_AUTH_URI=https://login.live.com/oauth20_authorize.srf",
    "example-file": (b"#aoutlook\nOUTLOOK_CLIENT_ID=\nOUTLOOK_CLIENT_SECRET=\nOUTLOOK_CLIENT_URI=http://localhost/?page=home\n"
                     b"OUTLOOK_AUTH_URI=https://login.live.com/oauth20_authorize.srf\n"
                     b"OUTLOOK_TOKEN_URI=https://login.live.com/oauth20_token.srf\n"
                     b"OUTLOOK_REFRESH_URI=https://login.live.com/oauth20_token.srf\n\n#office365\n"
                     b"OFFICE365_CLIENT_ID=\nOFFICE365_CLIENT_SECRET=\nOFFICE365_CLIENT_URI=http://localhost/?page=home\n"
                     b"OFFICE365_AUTH_URI=https://login.live.com/oauth20_authorize.srf\n"
                     b"OFFICE365_TOKEN_URI=https://login.live.com/oauth20_token.srf\n"
                     b"OFFICE365_REFRESH_URI=https://login.live.com/oauth20_token.srf\n\nDEFAULT_SETTING_TIMEZONE='UTC'\n"),
}
OWNED = ("_CLIENT_ID", "_CLIENT_SECRET", "_CLIENT_SECRET_ID", "_CLIENT_URI")


def owned(line: bytes) -> bool:
    text = line.decode().strip()
    if text.startswith("export "):
        text = text[len("export "):]
    key = text.split("=", 1)[0]
    return key.startswith(("OUTLOOK", "OFFICE365")) and key.endswith(OWNED)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_untouched_lines_stay_byte_for_byte(cli: Cli, emulator: Any, env_file: Path, name: str) -> None:
    original = VARIANTS[name]
    env_file.parent.mkdir()
    env_file.write_bytes(original)
    r = provision(cli, env_file, "--no-verify")
    assert r.returncode == 0, r
    written = env_file.read_bytes()
    before = [ln for ln in original.splitlines(keepends=True) if not owned(ln)]
    after = written.splitlines(keepends=True)
    # every line we do not own is still there, in order and byte-identical (the last one may gain a newline)
    it = iter(after)
    for line in before:
        assert any(line.rstrip(b"\r\n") == candidate.rstrip(b"\r\n") and
                   (candidate == line or not line.endswith(b"\n")) for candidate in it), (name, line)
    if b"\r\n" in original:
        assert written.count(b"\r\n") == written.count(b"\n"), "CRLF kept on every line"
    assert not written.startswith(b"\xef\xbb\xbf")
    values = read_env(env_file)
    loaded = load_with_symfony(env_file, CYPHT_KEYS)
    for key in CYPHT_KEYS:
        assert loaded[key] == values[key], (name, key)
    assert loaded["OUTLOOK_CLIENT_URI"] == REDIRECT and loaded["OFFICE365_CLIENT_URI"] == REDIRECT
    assert values["OUTLOOK_CLIENT_SECRET"] == values["OFFICE365_CLIENT_SECRET"] != "old"


def test_symlinked_env_updates_the_target_and_keeps_the_link(cli: Cli, env_file: Path, tmp_path: Path) -> None:
    target = tmp_path / "real" / "cypht.env"
    target.parent.mkdir()
    target.write_text("APP_NAME=Cypht\n")
    target.chmod(0o640)
    env_file.parent.mkdir()
    env_file.symlink_to(target)
    r = provision(cli, env_file, "--no-verify")
    assert r.returncode == 0, r
    assert env_file.is_symlink() and env_file.resolve() == target.resolve()
    assert target.read_text().startswith("APP_NAME=Cypht\n")
    assert "OUTLOOK_CLIENT_SECRET" in read_env(target)
    assert target.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in target.parent.iterdir()) == ["cypht.env"]  # no temp file left


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"\xef\xbb\xbfAPP_NAME=Cypht\n", "line 1"),
        (b"APP_NAME=Cypht Mail\n", "line 1"),
        (b"APP_NAME=Cypht\nBROKEN = value\n", "line 2"),
        (b"APP_NAME=\"unterminated\n", "line 1"),
        (b"\x00\x01\x02binary", ""),
    ],
)
def test_unparseable_env_is_refused_before_anything_happens(
    cli: Cli, emulator: Any, env_file: Path, content: bytes, fragment: str
) -> None:
    env_file.parent.mkdir()
    env_file.write_bytes(content)
    emulator.clear_log()
    r = provision(cli, env_file)
    assert r.returncode == 2, r
    assert fragment in r.stderr
    assert emulator.request_log == []
    assert env_file.read_bytes() == content
