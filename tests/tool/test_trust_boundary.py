"""Two users, one boundary (issue 18, rules 1 and 7): the operator (root) runs the CLI, `www-data` owns
`.env` and attacks, played with setpriv. Nothing `www-data` writes decides where the operator's
credential, token or webhook events go: settings live in the operator's installation record."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cypht_azure.operations.unattended import notify, record
from cypht_azure.secret import Secret
from tests.tool.conftest import Cli, cypht_apps, delete_app, record_of, token_requests
from tests.tool.listener import Listener
from tests.tool.test_provision import provision, read_env

AS_WWW_DATA = ["setpriv", "--reuid=www-data", "--regid=www-data", "--clear-groups", "--"]
# The operator's scheduled run: the sign-in in the environment, nothing else (endpoints from the record).
CRON = {"CYPHT_AZURE_AUTHORITY_HOST": "", "CYPHT_AZURE_GRAPH_URL": "", "CYPHT_AZURE_CA_FILE": ""}


def _needs_root() -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("playing www-data needs root and setpriv (util-linux); CI runs these as root")


@pytest.fixture
def web() -> Iterator[Path]:
    """/tmp/…/cypht: the web root www-data owns (outside pytest's root-only tree, so www-data reaches it)."""
    _needs_root()
    top = Path(tempfile.mkdtemp(prefix="cypht-azure-web-"))
    top.chmod(0o755)
    folder = top / "cypht"
    folder.mkdir()
    os.chown(folder, *_www_data())
    try:
        yield folder
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _www_data() -> tuple[int, int]:
    entry = pwd.getpwnam("www-data")
    return entry.pw_uid, entry.pw_gid


def as_www_data(*command: str) -> None:
    subprocess.run([*AS_WWW_DATA, *command], check=True, capture_output=True, timeout=30)


def provisioned_for_www_data(cli: Cli, env_file: Path) -> dict[str, Any]:
    """provision by root with the endpoints in its environment (kept in root's record); www-data owns .env."""
    r = provision(cli, env_file)
    assert r.returncode == 0, r
    os.chown(env_file, *_www_data())
    return dict(r.json)


@pytest.fixture
def attacker() -> Iterator[Listener]:
    listener = Listener()
    yield listener
    listener.stop()


@pytest.fixture
def hook_catcher() -> Iterator[Listener]:
    listener = Listener(tls_on=False)
    yield listener
    listener.stop()


@pytest.mark.parametrize("command", [("status",), ("rotate-secret", "--auth", "environment")])
def test_endpoints_www_data_writes_into_env_get_nothing(cli: Cli, emulator: Any, web: Path, attacker: Listener,
                                                        hook_catcher: Listener, command: tuple[str, ...]) -> None:
    env_file = web / ".env"
    provisioned_for_www_data(cli, env_file)
    lines = (f"CYPHT_AZURE_AUTHORITY_HOST={attacker.url}\nCYPHT_AZURE_GRAPH_URL={attacker.url}/v1.0\n"
             f"CYPHT_AZURE_CA_FILE={attacker.ca_file}\nCYPHT_AZURE_NOTIFY={hook_catcher.url}/steal\n")
    as_www_data("sh", "-c", f"printf '%s' '{lines}' >> {env_file}")
    assert read_env(env_file)["CYPHT_AZURE_AUTHORITY_HOST"] == attacker.url   # www-data's edit is there

    r = cli(*command, "--env-file", str(env_file), env=CRON)
    assert r.returncode == 0, r   # the record's endpoints: the emulator, as provision was run
    assert attacker.connections == 0 and hook_catcher.connections == 0
    assert emulator.info["admin_client_secret"].encode() not in attacker.received + hook_catcher.received
    for key in ("CYPHT_AZURE_AUTHORITY_HOST", "CYPHT_AZURE_GRAPH_URL", "CYPHT_AZURE_CA_FILE", "CYPHT_AZURE_NOTIFY"):
        assert key in r.stderr   # named in the warning, with the way to move them
    assert "record migrate --env-file" in r.stderr
    assert token_requests(emulator)


@pytest.mark.parametrize("layout", ["folder-of-www-data", "folder-writable-by-its-group", "file-of-www-data"])
def test_a_record_www_data_could_write_is_refused(cli: Cli, emulator: Any, web: Path, attacker: Listener,
                                                  layout: str) -> None:
    env_file = web / ".env"
    provisioned_for_www_data(cli, env_file)
    uid, gid = _www_data()
    folder = web.parent / "records"
    folder.mkdir(mode=0o755)
    forged = {"version": 1, "env_file": str(env_file), "installation_id": None,
              "settings": {"authority_host": attacker.url, "graph_url": f"{attacker.url}/v1.0",
                           "ca_file": str(attacker.ca_file)}, "state": {}}
    path = record.path_for(env_file, folder)
    if layout == "folder-of-www-data":
        os.chown(folder, uid, gid)
        as_www_data("sh", "-c", f"printf '%s' '{json.dumps(forged)}' > {path}")
    elif layout == "folder-writable-by-its-group":
        os.chown(folder, 0, gid)
        folder.chmod(0o775)
        as_www_data("sh", "-c", f"printf '%s' '{json.dumps(forged)}' > {path}")
    else:
        path.write_text(json.dumps(forged))
        os.chown(path, uid, gid)

    r = cli("status", "--env-file", str(env_file), env={**CRON, "CYPHT_AZURE_RECORD_DIR": str(folder)})
    assert r.returncode == 2, r
    assert "is not safe" in r.stderr
    assert ("mode 0775" if layout == "folder-writable-by-its-group" else "owned by www-data") in r.stderr
    assert attacker.connections == 0


def test_the_record_keeps_what_a_later_run_needs_and_env_only_cyphts_keys(cli: Cli, emulator: Any, env_file: Path,
                                                                         home: Path, cli_env: dict[str, str]) -> None:
    env_file.parent.mkdir()
    r = provision(cli, env_file, "--audience", "single-tenant", "--secret-lifetime", "90d")
    assert r.returncode == 0, r
    assert [k for k in read_env(env_file) if k.startswith("CYPHT_AZURE_")] == ["CYPHT_AZURE_INSTALLATION_ID"]
    kept = record_of(home, env_file)
    folder = home / ".config" / "cypht-azure" / "installations"
    path = record.path_for(env_file, folder)
    assert (path.stat().st_mode & 0o777, folder.stat().st_mode & 0o777) == (0o600, 0o700)
    assert kept["settings"]["secret_lifetime"] == "90d" and kept["state"]["client_id"] == r.json["client_id"]
    assert cli_env["AZURE_CLIENT_SECRET"] not in path.read_text()
    assert read_env(env_file)["OUTLOOK_CLIENT_SECRET"] not in path.read_text()
    # a later run needs nothing but the sign-in and --env-file
    for command in ("status", "rotate-secret"):
        again = cli(command, "--env-file", str(env_file), "--json", env=CRON)
        assert again.returncode == 0, again


def test_a_relative_ca_file_is_recorded_absolute(cli: Cli, emulator: Any, env_file: Path, home: Path,
                                                 tmp_path: Path) -> None:
    """Issue 19 item 7: `--ca-file ./entra/ca.pem` works from any folder later (cron starts elsewhere)."""
    env_file.parent.mkdir()
    (tmp_path / "entra").mkdir()
    shutil.copy(emulator.info["ca_file"], tmp_path / "entra" / "ca.pem")
    r = provision(cli, env_file, "--ca-file", "./entra/ca.pem")
    assert r.returncode == 0, r
    assert record_of(home, env_file)["settings"]["ca_file"] == str(tmp_path / "entra" / "ca.pem")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    later = cli("rotate-secret", "--env-file", str(env_file), "--json", env=CRON, cwd=elsewhere)
    assert later.returncode == 0, later


def test_doctor_reads_the_record_as_status_does(cli: Cli, emulator: Any, env_file: Path) -> None:
    """Issue 19 item 15: with only AZURE_* set, doctor signs in at the recorded host, not Microsoft's."""
    env_file.parent.mkdir()
    assert provision(cli, env_file).returncode == 0
    before = len(token_requests(emulator))
    r = cli("doctor", "--env-file", str(env_file), "--json", env=CRON)
    assert r.returncode != 3, r   # 3: it tried login.microsoftonline.com
    assert len(token_requests(emulator)) > before
    assert "login.microsoftonline.com" not in r.stdout


def test_settings_of_an_older_version_are_moved_by_record_migrate(cli: Cli, emulator: Any, env_file: Path,
                                                                  home: Path, cli_env: dict[str, str]) -> None:
    env_file.parent.mkdir()
    first = cli("provision", "--url", "https://mail.example.com", "--env-file", str(env_file),
                env={"CYPHT_AZURE_RECORD_DIR": str(home / "elsewhere")})   # (its record is not this one)
    assert first.returncode == 0, first
    old = (f"CYPHT_AZURE_TENANT={cli_env['AZURE_TENANT_ID']}\nCYPHT_AZURE_AUTHORITY_HOST={cli_env['CYPHT_AZURE_AUTHORITY_HOST']}\n"
           f"CYPHT_AZURE_GRAPH_URL={cli_env['CYPHT_AZURE_GRAPH_URL']}\nCYPHT_AZURE_CA_FILE={cli_env['CYPHT_AZURE_CA_FILE']}\n")
    with env_file.open("a") as f:
        f.write(old)   # what an older cypht-azure wrote
    before = env_file.read_text()
    shown = cli("record", "migrate", "--env-file", str(env_file), "--dry-run")
    assert shown.returncode == 0, shown
    assert cli_env["CYPHT_AZURE_AUTHORITY_HOST"] in shown.stdout and env_file.read_text() == before
    moved = cli("record", "migrate", "--env-file", str(env_file))
    assert moved.returncode == 0, moved
    assert not any(k in read_env(env_file) for k in record.LEGACY_KEYS)
    assert record_of(home, env_file)["settings"]["authority_host"] == cli_env["CYPHT_AZURE_AUTHORITY_HOST"]
    r = cli("status", "--env-file", str(env_file), "--json", env=CRON)
    assert r.returncode == 0, r
    assert "older cypht-azure" not in r.stderr


def test_installations_are_listed_and_renewed_together(cli: Cli, emulator: Any, tmp_path: Path) -> None:
    """status --installations (certbot certificates) and rotate-secret --all (certbot renew)."""
    files = [tmp_path / name / ".env" for name in ("blue", "green")]
    ids = {}
    for number, env_file in enumerate(files):
        env_file.parent.mkdir()
        r = cli("provision", "--url", f"https://mail{number}.example.com", "--env-file", str(env_file), "--json")
        assert r.returncode == 0, r
        ids[str(env_file)] = r.json["client_id"]
    listed = cli("status", "--installations", "--json")
    assert listed.returncode == 0, listed
    assert {i["env_file"]: i["client_id"] for i in listed.json["installations"]} == ids
    assert all(i["last_run"]["command"] == "provision" for i in listed.json["installations"])

    not_due = cli("rotate-secret", "--all", "--when-due", "--json", env=CRON)
    assert not_due.returncode == 0, not_due
    assert [i["result"]["skipped"] is not None for i in not_due.json["installations"]] == [True, True]

    blue = next(a for a in cypht_apps(emulator) if a["appId"] == ids[str(files[0])])
    delete_app(emulator, blue["id"])
    renewed = cli("rotate-secret", "--all", "--json", env=CRON)
    assert renewed.returncode == 1, renewed
    assert renewed.json["failed"] == 1 and renewed.json["succeeded"] == 1
    assert "1 of 2 recorded installation(s) failed" in renewed.stderr
    assert renewed.json["installations"][1]["result"]["new_key_id"]

    # deprovision reads the record (only the sign-in given) and drops it: nothing left to renew
    gone = cli("deprovision", "--env-file", str(files[1]), "--yes", env=CRON)
    assert gone.returncode == 0, gone
    left = cli("status", "--installations", "--json")
    assert [i["env_file"] for i in left.json["installations"]] == [str(files[0])]


# --- webhooks (issue 18, rule 7) -------------------------------------------------------------------

def test_notify_over_plain_http_to_another_machine_is_refused(cli: Cli, emulator: Any, env_file: Path) -> None:
    env_file.parent.mkdir()
    r = provision(cli, env_file, "--notify", "http://192.0.2.10/hook/token")
    assert r.returncode == 2, r
    assert "plain http" in r.stderr and "token" not in r.stderr
    assert not env_file.exists() and cypht_apps(emulator) == []


class _Redirector:
    def __init__(self, target: str) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.send_response(302)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_webhook_redirect_is_not_followed(cli: Cli, emulator: Any, env_file: Path,
                                            hook_catcher: Listener) -> None:
    env_file.parent.mkdir()
    redirector = _Redirector(hook_catcher.url + "/elsewhere")
    try:
        r = provision(cli, env_file, "--notify", redirector.url)
    finally:
        redirector.stop()
    assert r.returncode == 0, r
    assert hook_catcher.connections == 0
    assert "redirect, not followed" in r.stderr


def test_the_webhook_body_never_holds_a_secret_or_token() -> None:
    secret = Secret("Q~abcdefghijklmnopqrstuvwxyz0123456789")
    token = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2dyYXBoIn0.c2lnbmF0dXJl"
    event = notify.Event("failed", "rotate-secret", "/srv/.env", 1, "app",
                         message=f"Graph said: bad {secret.reveal()} with Bearer {token}")
    body = event.body([secret]).decode()
    assert secret.reveal() not in body and token not in body and "[redacted]" in body
    assert json.loads(body)["message"].startswith("Graph said: bad ")


def test_settings_of_an_older_version_given_again_move_with_the_run(cli: Cli, emulator: Any, env_file: Path,
                                                                    home: Path, cli_env: dict[str, str]) -> None:
    """The operator runs rotate-secret with the endpoints given (here in its environment): the record
    keeps them and the rotation's write drops the old keys from .env; one it did not give stays, named."""
    env_file.parent.mkdir()
    assert provision(cli, env_file).returncode == 0
    with env_file.open("a") as f:
        f.write(f"CYPHT_AZURE_GRAPH_URL={cli_env['CYPHT_AZURE_GRAPH_URL']}\nCYPHT_AZURE_AUDIENCE=personal\n")
    r = cli("rotate-secret", "--env-file", str(env_file))
    assert r.returncode == 0, r
    env = read_env(env_file)
    assert "CYPHT_AZURE_GRAPH_URL" not in env and env["CYPHT_AZURE_AUDIENCE"] == "personal"
    assert "CYPHT_AZURE_AUDIENCE" in r.stderr and "record migrate" in r.stderr
    assert record_of(home, env_file)["settings"]["graph_url"] == cli_env["CYPHT_AZURE_GRAPH_URL"]


def test_recorded_deploy_hooks_and_lifetime_run_again_unattended(cli: Cli, emulator: Any, env_file: Path,
                                                                 tmp_path: Path, home: Path) -> None:
    """The record keeps --deploy-hook as given and --secret-lifetime: the scheduled run repeats both."""
    env_file.parent.mkdir()
    runs = tmp_path / "runs"
    hook = f'echo "$CYPHT_AZURE_NEW_KEY_ID" >> {runs}'
    first = provision(cli, env_file, "--deploy-hook", hook, "--secret-lifetime", "40d")
    assert first.returncode == 0, first
    assert record_of(home, env_file)["settings"]["deploy_hook"] == [hook]
    later = cli("rotate-secret", "--env-file", str(env_file), "--json", env=CRON)
    assert later.returncode == 0, later
    assert runs.read_text().split() == [first.json["secret_key_id"], later.json["new_key_id"]]
    lifetime = (dt.datetime.fromisoformat(later.json["expires"].replace("Z", "+00:00"))
                - dt.datetime.now(dt.timezone.utc))
    assert dt.timedelta(days=39) < lifetime <= dt.timedelta(days=40)
