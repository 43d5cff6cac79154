"""A redeployed `.env` (deleted and made again at the same path, or restored from a template or a backup)
never leaves the app at Entra's 2-secret limit; a real copy (another live file with the same installation
ID) is still reported and left alone, and the limit's hint never lists the secret `.env` holds."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tests.tool.conftest import Cli
from tests.tool.test_lifecycle import app_of, rotate, secret_works
from tests.tool.test_provision import provision, read_env

TEMPLATE = "# Cypht configuration\nAPP_NAME=Cypht\nDB_PASS='p@ss word'\n"


def key_ids(emulator: Any, client_id: str) -> set[str]:
    return {str(c["keyId"]).lower() for c in app_of(emulator, client_id)["passwordCredentials"]}


def holds_only_what_env_holds(emulator: Any, env_file: Path) -> str:
    env = read_env(env_file)
    client_id = env["OUTLOOK_CLIENT_ID"]
    assert env["OUTLOOK_CLIENT_SECRET_ID"] == env["OFFICE365_CLIENT_SECRET_ID"]
    assert key_ids(emulator, client_id) == {env["OUTLOOK_CLIENT_SECRET_ID"]}
    assert secret_works(emulator, client_id, env["OUTLOOK_CLIENT_SECRET"])
    return client_id


def test_redeployed_env_then_provision_and_rotate_leave_one_secret(cli: Cli, emulator: Any, env_file: Path) -> None:
    env_file.parent.mkdir()
    env_file.write_text(TEMPLATE)
    assert provision(cli, env_file).returncode == 0
    r = rotate(cli, env_file)
    assert r.returncode == 0, r
    old_key = read_env(env_file)["OUTLOOK_CLIENT_SECRET_ID"]

    # The redeploy: the file is deleted and made again from the template at the same path.
    env_file.unlink()
    env_file.write_text(TEMPLATE)
    again = provision(cli, env_file)
    assert again.returncode == 0, again
    client_id = holds_only_what_env_holds(emulator, env_file)
    removed = [s for s in again.json["steps"] if s["step"] == "RemoveSecret"]
    assert [s["summary"] for s in removed] == [
        f"Remove the client secret {old_key} (made at this path for the .env this one replaced; held by no file)"]
    # ... and only once the new secret works: the removal comes after the check.
    names = [s["step"] for s in again.json["steps"]]
    assert names.index("VerifySecret") < names.index("RemoveSecret")

    for _ in range(2):
        r = rotate(cli, env_file)
        assert r.returncode == 0, r
        assert holds_only_what_env_holds(emulator, env_file) == client_id


def test_env_restored_from_an_old_backup_rotates_and_drops_the_secret_no_file_holds(
        cli: Cli, emulator: Any, env_file: Path, tmp_path: Path) -> None:
    env_file.parent.mkdir()
    env_file.write_text(TEMPLATE)
    assert provision(cli, env_file).returncode == 0
    backup = tmp_path / "backup.env"
    shutil.copy2(env_file, backup)
    for _ in range(2):  # the secret of the backup is gone from the app; the live one is the file's
        assert rotate(cli, env_file).returncode == 0
    env_file.unlink()
    shutil.copy2(backup, env_file)   # the restore: an old secret, the same installation ID
    client_id = read_env(env_file)["OUTLOOK_CLIENT_ID"]
    assert len(key_ids(emulator, client_id)) == 1

    r = rotate(cli, env_file)
    assert r.returncode == 0, r
    holds_only_what_env_holds(emulator, env_file)
    r = rotate(cli, env_file)
    assert r.returncode == 0, r
    holds_only_what_env_holds(emulator, env_file)


def test_a_live_copy_is_left_alone_and_the_limit_hint_never_lists_the_held_secret(
        cli: Cli, emulator: Any, env_file: Path, tmp_path: Path) -> None:
    env_file.parent.mkdir()
    env_file.write_text(TEMPLATE)
    assert provision(cli, env_file).returncode == 0
    copy = tmp_path / "other" / ".env"
    copy.parent.mkdir()
    shutil.copy2(env_file, copy)      # a second live Cypht with the same installation ID
    assert rotate(cli, copy).returncode == 0   # the copy moves on (and drops the secret both held)
    r = rotate(cli, env_file)         # the original: its secret is gone, it gets a new one
    assert r.returncode == 0, r
    client_id = read_env(env_file)["OUTLOOK_CLIENT_ID"]
    copy_key = read_env(copy)["OUTLOOK_CLIENT_SECRET_ID"]
    held = read_env(env_file)["OUTLOOK_CLIENT_SECRET_ID"]
    assert key_ids(emulator, client_id) == {copy_key, held}, "the copy's live secret is never removed"
    assert secret_works(emulator, client_id, read_env(copy)["OUTLOOK_CLIENT_SECRET"])
    assert any("a copy of this file" in note for note in r.json["actions"]), r.json["actions"]

    # At the limit: refused, and the list of secrets to delete names the copy's, never the held one.
    before = env_file.read_bytes()
    r = cli("rotate-secret", "--env-file", str(env_file))
    assert r.returncode == 1, r
    assert "2 client secrets" in r.stderr
    hint = r.stderr[r.stderr.index("Delete one of these"):]
    assert copy_key in hint and held not in hint, r.stderr
    assert env_file.read_bytes() == before
    assert key_ids(emulator, client_id) == {copy_key, held}
    st = cli("status", "--env-file", str(env_file), "--json")
    labels = {s["key_id"]: s["created_by"] for s in st.json["secrets"]}
    assert "copy" in labels[copy_key] and labels[held] == "cypht-azure (this .env)", labels
