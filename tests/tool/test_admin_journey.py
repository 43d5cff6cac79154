"""A new Cypht admin's journey (issue 12): each wrong answer or dead end they met, through the real CLI
against the emulator. Items are named by their number in the issue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.tool.conftest import Cli, cypht_apps

URL = "https://mail.example.com"
LIVE_AUTH = "https://login.live.com/oauth20_authorize.srf"
LIVE_TOKEN = "https://login.live.com/oauth20_token.srf"
# Cypht's .env.example, as an admin copies it before running provision.
CYPHT_EXAMPLE = "\n".join(
    f"#{comment}\n{p}_CLIENT_ID=\n{p}_CLIENT_SECRET=\n{p}_CLIENT_URI=http://localhost/?page=home\n"
    f"{p}_AUTH_URI={LIVE_AUTH}\n{p}_TOKEN_URI={LIVE_TOKEN}\n{p}_REFRESH_URI={LIVE_TOKEN}\n"
    for comment, p in (("aoutlook", "OUTLOOK"), ("office365", "OFFICE365")))


def read_env(path: Path) -> dict[str, str]:
    from cypht_azure import envdisk

    doc = envdisk.load(path)
    return {k: v for k in sorted(doc.keys()) if (v := doc.get(k)) is not None}


def provision(cli: Cli, env_file: Path, *extra: str, url: str = URL) -> Any:
    return cli("provision", "--url", url, "--env-file", str(env_file), "--json", "--no-verify", *extra)


def status(cli: Cli, env_file: Path, *extra: str) -> Any:
    return cli("status", "--env-file", str(env_file), "--json", *extra)


def codes(status_doc: dict[str, Any]) -> list[str]:
    return [f["code"] for f in status_doc["findings"]]


# 1. Endpoints that fit the audience -------------------------------------------------------------

def v2(segment: str, endpoint: str) -> str:
    return f"https://login.microsoftonline.com/{segment}/oauth2/v2.0/{endpoint}"


@pytest.mark.parametrize(("audience", "segment"), [("single-tenant", "TENANT"), ("multi-tenant", "organizations")])
def test_directory_audience_gets_v2_endpoints_and_the_scope_note(
    cli: Cli, emulator: Any, env_file: Path, audience: str, segment: str,
) -> None:
    env_file.parent.mkdir()
    env_file.write_text(CYPHT_EXAMPLE)  # Live endpoints from Cypht's example: they cannot sign in work accounts
    r = provision(cli, env_file, "--audience", audience)
    assert r.returncode == 0, r
    assert "wl.imap" in r.stderr and "Cypht" in r.stderr
    seg = emulator.info["tenant_id"] if segment == "TENANT" else segment
    values = read_env(env_file)
    for p in ("OUTLOOK", "OFFICE365"):
        assert values[f"{p}_AUTH_URI"] == v2(seg, "authorize")
        assert values[f"{p}_TOKEN_URI"] == v2(seg, "token")
        assert values[f"{p}_REFRESH_URI"] == v2(seg, "token")
    s = status(cli, env_file)
    assert s.returncode == 0, s
    assert codes(s.json) == ["cypht-scope"]
    assert s.json["ok"] is True
    text = cli("status", "--env-file", str(env_file))
    assert "No problems found" not in text.stdout and "wl.imap" in text.stdout


def test_default_audience_keeps_cypht_live_endpoints(cli: Cli, env_file: Path) -> None:
    env_file.parent.mkdir()
    r = provision(cli, env_file)
    assert r.returncode == 0, r
    assert "wl.imap" not in r.stderr
    values = read_env(env_file)
    assert values["OUTLOOK_AUTH_URI"] == LIVE_AUTH and values["OFFICE365_TOKEN_URI"] == LIVE_TOKEN
    assert codes(status(cli, env_file).json) == []


def test_endpoints_the_admin_set_are_kept_only_when_they_fit(cli: Cli, emulator: Any, env_file: Path) -> None:
    tenant = emulator.info["tenant_id"]
    env_file.parent.mkdir()
    proxy = "https://sso.example.org/authorize"
    env_file.write_text(
        f"OUTLOOK_AUTH_URI={proxy}\n"                        # the admin's own host: not ours to judge
        f"OUTLOOK_TOKEN_URI={v2(tenant, 'token')}\n"          # fits a single-tenant app
        f"OUTLOOK_REFRESH_URI={v2('common', 'token')}\n"      # /common: AADSTS50194 for single-tenant apps
        f"OFFICE365_AUTH_URI={LIVE_AUTH}\n"                   # personal accounts only
    )
    r = provision(cli, env_file, "--audience", "single-tenant")
    assert r.returncode == 0, r
    values = read_env(env_file)
    assert values["OUTLOOK_AUTH_URI"] == proxy
    assert values["OUTLOOK_TOKEN_URI"] == v2(tenant, "token")
    assert values["OUTLOOK_REFRESH_URI"] == v2(tenant, "token")
    assert values["OFFICE365_AUTH_URI"] == v2(tenant, "authorize")


def test_status_reports_endpoints_that_cannot_sign_in_the_audience(cli: Cli, env_file: Path) -> None:
    env_file.parent.mkdir()
    assert provision(cli, env_file, "--audience", "single-tenant").returncode == 0
    text = env_file.read_text()
    for line in text.splitlines():
        if line.startswith("OUTLOOK_AUTH_URI="):
            text = text.replace(line, f"OUTLOOK_AUTH_URI={LIVE_AUTH}")
    env_file.write_text(text)
    s = status(cli, env_file)
    assert s.json["ok"] is False
    mismatches = [f for f in s.json["findings"] if f["code"] == "endpoint-audience"]
    assert len(mismatches) == 1 and "OUTLOOK_AUTH_URI" in mismatches[0]["message"]
    assert "cypht-azure provision" in mismatches[0]["fix"]
    assert status(cli, env_file, "--fail-within", "1d").returncode == 6


def test_national_cloud_host_for_directory_audiences() -> None:
    from cypht_azure import cypht

    wanted = cypht.SignInEndpoints("AzureADMultipleOrgs", "login.microsoftonline.us", "t").wanted()
    assert wanted["AUTH_URI"] == "https://login.microsoftonline.us/organizations/oauth2/v2.0/authorize"
    problem = cypht.SignInEndpoints("AzureADMultipleOrgs", "login.microsoftonline.us", "t").problem(
        "TOKEN_URI", "https://login.microsoftonline.com/organizations/oauth2/v2.0/token")
    assert problem and "login.microsoftonline.us" in problem


# 2. Durations ----------------------------------------------------------------------------------

def test_a_secret_with_an_hour_left_is_not_expired(cli: Cli, env_file: Path) -> None:
    env_file.parent.mkdir()
    r = provision(cli, env_file, "--secret-lifetime", "1h")
    assert r.returncode == 0, r
    assert "less than a day" in r.stderr
    assert any("valid for 1 hour " in a for a in r.json["actions"]), r.json["actions"]
    s = status(cli, env_file)
    assert "secret-expired" not in codes(s.json)
    assert "secret-expiring" in codes(s.json)
    assert 0 < s.json["env_secret_days_left"] < 1
    expiring = next(f for f in s.json["findings"] if f["code"] == "secret-expiring")
    assert "expires in 1 hour " in expiring["message"]
    every = cli("status", "--all")
    assert every.returncode == 0, every
    assert "none live" not in every.stdout


def test_an_absurd_lifetime_is_too_long_not_unparseable(cli: Cli, env_file: Path) -> None:
    r = provision(cli, env_file, "--secret-lifetime", "1000000000d")
    assert r.returncode == 2, r
    assert "too long" in r.stderr and "730 days (2 years)" in r.stderr
    assert "is not a duration" not in r.stderr


def test_rotate_and_status_agree_on_the_days_left(cli: Cli, env_file: Path) -> None:
    env_file.parent.mkdir()
    assert provision(cli, env_file).returncode == 0
    rot = cli("rotate-secret", "--env-file", str(env_file), "--if-expiring-within", "30d")
    assert rot.returncode == 0, rot
    s = cli("status", "--env-file", str(env_file), "--fail-within", "400d")
    assert "valid for 365 days more" in rot.stdout, rot.stdout
    assert "expires in 365 days" in s.stdout, s.stdout


# 6. URLs ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "words"), [
    ("https://user:pw@mail.example.org/", "user name or password"),
    ("https://mail.example.org./", "ends in a dot"),
    ("https://mail.example.org/cypht//", "'//'"),
    ("http://[::1]:8080/", "[::1]"),
])
def test_urls_that_would_register_the_wrong_thing_are_refused(
    cli: Cli, emulator: Any, env_file: Path, url: str, words: str,
) -> None:
    r = provision(cli, env_file, url=url)
    assert r.returncode == 2, r
    assert words in r.stderr
    assert ":pw@" not in r.stdout + r.stderr  # a password typed into the URL is not repeated
    assert cypht_apps(emulator) == []
    assert not env_file.exists()


def test_loopback_ip_is_accepted_like_localhost(cli: Cli, env_file: Path) -> None:
    env_file.parent.mkdir()
    r = provision(cli, env_file, url="http://127.0.0.1:8080/")
    assert r.returncode == 0, r
    assert r.json["redirect_uris"] == ["http://127.0.0.1:8080/"]


def test_index_php_is_kept_as_cypht_serves_it(cli: Cli, env_file: Path) -> None:
    env_file.parent.mkdir()
    r = provision(cli, env_file, url="https://mail.example.org/cypht/index.php")
    assert r.returncode == 0, r
    assert r.json["redirect_uris"] == ["https://mail.example.org/cypht/index.php"]
    assert read_env(env_file)["OUTLOOK_CLIENT_URI"] == "https://mail.example.org/cypht/index.php"


def test_display_names_tell_installations_of_one_host_apart(cli: Cli, tmp_path: Path) -> None:
    names = []
    for n, url in enumerate(["https://mail.example.org/", "https://mail.example.org:8443/",
                             "https://mail.example.org/team/"]):
        env = tmp_path / f"c{n}" / ".env"
        env.parent.mkdir()
        r = provision(cli, env, url=url)
        assert r.returncode == 0, r
        names.append(r.json["display_name"])
    assert names == ["Cypht webmail (mail.example.org)", "Cypht webmail (mail.example.org:8443)",
                     "Cypht webmail (mail.example.org/team)"]


# 9. Progress: one live line on a terminal, plain lines elsewhere ---------------------------------

def run_with_terminal_stderr(cli_env: dict[str, str], cwd: Path, *args: str) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal (as an admin at a shell sees it)."""
    import os
    import pty
    import subprocess
    import sys

    from tests.tool.conftest import REPO

    master, slave = pty.openpty()
    env = dict(cli_env, COLUMNS="200", NO_COLOR="1", PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "cypht_azure", *args], cwd=cwd, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    stdout = proc.stdout.read().decode() if proc.stdout else ""
    return proc.wait(timeout=60), stdout, b"".join(chunks).decode()


def test_progress_is_one_live_line_on_a_terminal(cli_env: dict[str, str], emulator: Any, tmp_path: Path,
                                                  env_file: Path) -> None:
    env_file.parent.mkdir()
    emulator.faults.secret_activation_delay(3000)  # the verification waits several ticks
    code, stdout, stderr = run_with_terminal_stderr(
        cli_env, tmp_path, "provision", "--url", URL, "--env-file", str(env_file))
    assert code == 0, stderr
    assert "Done." in stdout
    assert "Signing in" in stderr and "Waiting for Entra" in stderr
    # Every progress report rewrites the one line in place: none of them ends a line of its own.
    finished_lines = stderr.replace("\r\n", "\n").split("\n")
    assert not [line for line in finished_lines if "… " in line.split("\r")[-1].replace("\x1b[K", "")]
    assert "\r\x1b[K" in stderr
    assert stderr.replace("\r\x1b[K", "").count("(5 s)") <= 1
    # The live line is erased before the command ends: nothing is left on the last line.
    assert stderr.endswith("\r\x1b[K") or not stderr.rstrip("\r\n").split("\n")[-1].count("…")


def test_progress_off_a_terminal_is_plain_and_never_repeats(cli: Cli, emulator: Any, env_file: Path) -> None:
    env_file.parent.mkdir()
    emulator.faults.secret_activation_delay(3000)
    r = cli("provision", "--url", URL, "--env-file", str(env_file))
    assert r.returncode == 0, r
    assert "\r" not in r.stderr and "\x1b" not in r.stderr
    waits = [line for line in r.stderr.splitlines() if line.startswith("…")]
    assert len(waits) == len(set(waits)), waits


# 10. --help examples copy-pasteable at any width ------------------------------------------------

def help_examples() -> list[tuple[str, str]]:
    """(command, example line) for every indented `cypht-azure …` line in a command's help text."""
    import typer

    from cypht_azure.cli import app

    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="cypht-azure")
    found = []
    for name in root.list_commands(ctx):  # type: ignore[attr-defined]
        command = root.get_command(ctx, name)  # type: ignore[attr-defined]
        for line in (command.help or "").splitlines():
            if line.startswith((" ", "\t")) and line.strip().startswith("cypht-azure "):
                found.append((name, line.strip()))
    return found


def test_every_command_has_examples() -> None:
    assert {name for name, _ in help_examples()} >= {"provision", "rotate-secret", "status"}


@pytest.mark.parametrize("columns", ["40", "80", "200"])
def test_help_examples_are_never_split(columns: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.tool.conftest import REPO, clean_environ

    env = dict(clean_environ(tmp_path), COLUMNS=columns)
    by_command: dict[str, list[str]] = {}
    for name, line in help_examples():
        by_command.setdefault(name, []).append(line)
    for name, lines in by_command.items():
        shown = subprocess.run([sys.executable, "-m", "cypht_azure", name, "--help"], env=env, cwd=REPO,
                               capture_output=True, text=True, timeout=60).stdout
        shown_lines = [s.strip() for s in shown.splitlines()]
        for line in lines:
            assert line in shown_lines, f"{name} --help at {columns} columns splits:\n{line}\n\n{shown}"


# 13. --json on usage errors; no "(new)" in a field that holds IDs --------------------------------

@pytest.mark.parametrize(("args", "env", "words"), [
    (["status", "--json", "--no-such-option"], {}, "--no-such-option"),
    (["provision", "--json", "--timeout", "0"], {}, "--timeout"),
    (["rotate-secret", "--if-expiring-within"], {"CYPHT_AZURE_JSON": "1"}, "--if-expiring-within"),
    (["statsu", "--json"], {}, "statsu"),
])
def test_usage_errors_under_json_print_the_json_error(cli: Cli, args: list[str], env: dict[str, str],
                                                       words: str) -> None:
    r = cli(*args, env=env)
    assert r.returncode == 2, r
    error = r.json["error"]
    assert error["type"] == "UsageError" and error["exit_code"] == 2
    assert words in error["message"]
    assert "--help" in error["hint"]


def test_dry_run_json_has_null_ids_for_a_registration_to_create(cli: Cli, env_file: Path) -> None:
    env_file.parent.mkdir()
    r = provision(cli, env_file, "--dry-run")
    assert r.returncode == 0, r
    assert r.json["client_id"] is None and r.json["object_id"] is None
    assert r.json["created"] is True and r.json["dry_run"] is True
    human = cli("provision", "--url", URL, "--env-file", str(env_file), "--dry-run")
    assert "(new)" in human.stdout  # people read a word, scripts read null


# 15. Choices listed in --help ---------------------------------------------------------------------

def test_options_with_fixed_values_list_them(cli: Cli) -> None:
    from cypht_azure import auth, cypht

    shown = " ".join(cli("provision", "--help", env={"COLUMNS": "250"}).stdout.split())
    for option, values in [("--auth", auth.AUTH_METHODS), ("--cloud", tuple(auth.CLOUDS)),
                           ("--provider", (*cypht.PROVIDERS, "both")), ("--audience", tuple(cypht.AUDIENCES))]:
        assert f"{option} [{'|'.join(values)}]" in shown, option
    status_help = " ".join(cli("status", "--help", env={"COLUMNS": "250"}).stdout.split())
    assert f"--cloud [{'|'.join(auth.CLOUDS)}]" in status_help


# 16. Install instructions that work today -------------------------------------------------------

def test_readme_installs_from_the_source_tree() -> None:
    import re
    import shlex

    from tests.tool.conftest import REPO

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    real = readme.split("## Use it for real", 1)[1].split("\n## ", 1)[0]
    assert "not published" in real
    block = re.search(r"```sh\n(.*?)```", real, re.S)
    assert block
    installs = [shlex.split(line, comments=True) for line in block.group(1).splitlines()
                if re.match(r"\s*(pipx|uv|pip|python3)\b.*\binstall\b", line)]
    assert installs
    for words in installs:
        target = words[-1]
        assert target.startswith(("./", "/", "git+")) or target == ".", f"installs {target!r} from a registry"
    # The first two commands stay the ones that work from a checkout.
    first_two = re.findall(r"```sh\n(.*?)```", readme, re.S)[:2]
    assert "pip install -q ." in first_two[0] and "provision --sandbox" in first_two[0]
    assert "pip install -q -e '.[test]'" in first_two[1]


# 3. Empty keys in a block Cypht shows ------------------------------------------------------------

def test_empty_keys_in_a_declared_block_are_a_finding(cli: Cli, env_file: Path) -> None:
    env_file.parent.mkdir()
    assert provision(cli, env_file.parent / "other.env").returncode == 0  # the app exists for this URL
    env_file.write_text(CYPHT_EXAMPLE.replace("OUTLOOK_CLIENT_URI=http://localhost/?page=home", "OUTLOOK_CLIENT_URI=")
                        .replace("OFFICE365_CLIENT_URI=http://localhost/?page=home", "OFFICE365_CLIENT_URI="))
    s = status(cli, env_file, "--url", URL)
    assert s.json["ok"] is False, s
    empty = [f for f in s.json["findings"] if f["code"] == "missing-keys"]
    assert {p for f in empty for p in ("OUTLOOK", "OFFICE365") if f"{p}_CLIENT_ID" in f["message"]} == {
        "OUTLOOK", "OFFICE365"}
    outlook = next(p for p in s.json["providers"] if p["provider"] == "outlook")
    assert {"OUTLOOK_CLIENT_ID", "OUTLOOK_CLIENT_SECRET", "OUTLOOK_CLIENT_URI"} <= set(outlook["missing_keys"])
    text = cli("status", "--env-file", str(env_file), "--url", URL)
    assert "No problems found" not in text.stdout


# 5. status on an app that does not exist ------------------------------------------------------------

def test_status_of_an_app_that_does_not_exist_exits_5(cli: Cli, env_file: Path) -> None:
    env_file.parent.mkdir()
    env_file.write_text("")
    r = status(cli, env_file, "--app-id", "00000000-0000-0000-0000-00000000abcd")
    assert r.returncode == 5, r
    assert [f["code"] for f in r.json["findings"]] == ["app-not-found"]


# 12. Contradictions are refused ---------------------------------------------------------------------

@pytest.mark.parametrize("extra", [["--app-id", "00000000-0000-0000-0000-00000000abcd"], ["--verify-secret"],
                                   ["--url", URL]])
def test_status_all_refuses_options_about_one_app(cli: Cli, emulator: Any, extra: list[str]) -> None:
    from tests.tool.conftest import graph_requests

    emulator.clear_log()
    r = cli("status", "--all", *extra, "--json")
    assert r.returncode == 2, r
    assert extra[0] in r.json["error"]["message"] and "--all" in r.json["error"]["message"]
    assert graph_requests(emulator) == []


def test_verbose_and_quiet_together_are_refused(cli: Cli, env_file: Path) -> None:
    r = cli("status", "--env-file", str(env_file), "--verbose", "--quiet", "--json")
    assert r.returncode == 2, r
    assert "--verbose" in r.json["error"]["message"] and "--quiet" in r.json["error"]["message"]


# 4. --url finds deprovisioned apps ----------------------------------------------------------------

def test_status_by_url_finds_a_deleted_app(cli: Cli, emulator: Any, env_file: Path) -> None:
    env_file.parent.mkdir()
    made = provision(cli, env_file).json
    assert cli("deprovision", "--env-file", str(env_file), "--yes").returncode == 0
    s = status(cli, env_file, "--url", URL)
    assert s.returncode == 0, s
    assert codes(s.json) == ["app-deleted"]  # deprovision left no empty block behind (item 14)
    assert f"restore --app-id {made['client_id']}" in s.json["findings"][0]["fix"]


# 12. --url that contradicts the app .env names ----------------------------------------------------

def test_rotate_with_a_url_of_another_app_is_refused(cli: Cli, emulator: Any, env_file: Path) -> None:
    from tests.tool.conftest import writes

    env_file.parent.mkdir()
    assert provision(cli, env_file).returncode == 0
    before = env_file.read_text()
    emulator.clear_log()
    r = cli("rotate-secret", "--env-file", str(env_file), "--url", "https://other.example.org", "--json")
    assert r.returncode == 2, r
    assert "https://other.example.org" in r.json["error"]["message"]
    assert writes(emulator) == [] and env_file.read_text() == before
    same = cli("rotate-secret", "--env-file", str(env_file), "--url", URL, "--json")
    assert same.returncode == 0, same


# 11. Suggested commands keep the context they were made in -------------------------------------

def suggested(text: str) -> list[str]:
    import re

    return [m.group(0) for m in re.finditer(r"cypht-azure [a-z-]+[^`\n]*", text)]


def test_sandbox_hints_keep_sandbox_and_env_file(cli: Cli, tmp_path: Path) -> None:
    import shlex

    box = tmp_path / "box"
    env = tmp_path / "sandbox.env"
    base = ["--sandbox", "--sandbox-dir", str(box)]
    assert cli("provision", *base, "--url", URL, "--env-file", str(env), "--no-verify").returncode == 0
    gone = cli("deprovision", *base, "--env-file", str(env), "--yes")
    assert gone.returncode == 0, gone
    undo = [c for c in suggested(gone.stdout) if c.startswith("cypht-azure restore")]
    assert undo and "--sandbox" in undo[0] and f"--sandbox-dir {box}" in undo[0], gone.stdout
    back = cli(*shlex.split(undo[0])[1:])
    assert back.returncode == 0, back


def test_fixes_for_a_hand_made_app_name_it_and_the_env_file(cli: Cli, emulator: Any, env_file: Path) -> None:
    import shlex

    app = emulator.directory.create_application(displayName="made in the portal",
                                                signInAudience="AzureADandPersonalMicrosoftAccount",
                                                api={"requestedAccessTokenVersion": 2},
                                                web={"redirectUris": ["https://mail.example.com/"]})
    env_file.parent.mkdir()
    env_file.write_text(f"OUTLOOK_CLIENT_ID={app['appId']}\nOUTLOOK_CLIENT_URI=https://mail.example.com/\n")
    s = status(cli, env_file)
    missing = next(f for f in s.json["findings"] if f["code"] == "missing-keys")
    command = suggested(missing["fix"])[0]
    assert f"--app-id {app['appId']}" in command and f"--env-file {env_file}" in command, command
    r = cli(*shlex.split(command)[1:])
    assert r.returncode == 0, r
    assert codes(status(cli, env_file).json) == []



# 4 (deprovision). --url finds a deleted app ---------------------------------------------------------

def test_deprovision_by_url_after_deprovision_says_already_deleted(cli: Cli, env_file: Path, tmp_path: Path) -> None:
    env_file.parent.mkdir()
    made = provision(cli, env_file).json
    assert cli("deprovision", "--env-file", str(env_file), "--yes").returncode == 0
    empty = tmp_path / "empty.env"
    empty.write_text("")
    again = cli("deprovision", "--url", URL, "--env-file", str(empty), "--yes", "--json")
    assert again.returncode == 0, again
    assert again.json["already_deleted"] is True and again.json["client_id"] == made["client_id"]


# 7. Migrating from the portal: stale redirect URIs ----------------------------------------------------

def test_adopting_a_portal_app_can_drop_the_page_home_redirect(cli: Cli, emulator: Any, env_file: Path) -> None:
    from tests.tool.conftest import update_app

    stale = "https://mail.example.com/?page=home"
    app = emulator.directory.create_application(displayName="Cypht (portal)", signInAudience="AzureADMyOrg",
                                                web={"redirectUris": [stale]})
    update_app(emulator, app["id"], {"signInAudience": "AzureADandPersonalMicrosoftAccount",
                                     "api": {"requestedAccessTokenVersion": 2}}, validate=False)
    env_file.parent.mkdir()
    refused = provision(cli, env_file, "--app-id", app["appId"])
    assert refused.returncode == 2, refused
    hint = refused.json["error"]["hint"]
    assert "--remove-redirect-uri" in hint and stale in hint and "admin center" not in hint
    plan = provision(cli, env_file, "--app-id", app["appId"], "--remove-redirect-uri", stale, "--dry-run")
    assert plan.returncode == 0, plan
    assert any(stale in line and "emove" in line for line in plan.json["actions"]), plan.json["actions"]
    done = provision(cli, env_file, "--app-id", app["appId"], "--remove-redirect-uri", stale)
    assert done.returncode == 0, done
    assert done.json["redirect_uris"] == ["https://mail.example.com/"]
    assert emulator.directory.get_application(app_id=app["appId"])["web"]["redirectUris"] == [URL + "/"]


def test_removing_a_redirect_uri_the_app_does_not_have_is_refused(cli: Cli, env_file: Path) -> None:
    env_file.parent.mkdir()
    r = provision(cli, env_file, "--remove-redirect-uri", "https://nowhere.example/")
    assert r.returncode == 2, r
    assert "https://nowhere.example/" in r.json["error"]["message"]


# 11. restore on an active app -----------------------------------------------------------------------

def test_restore_on_an_active_app_says_it_is_active(cli: Cli, env_file: Path) -> None:
    env_file.parent.mkdir()
    made = provision(cli, env_file).json
    r = cli("restore", "--app-id", made["client_id"])
    assert r.returncode == 0, r
    assert "already active" in r.stdout and "gone" not in r.stdout + r.stderr


# 12. --url with --redirect-uri ------------------------------------------------------------------------

def test_url_and_a_redirect_uri_that_is_not_its_own_are_refused(cli: Cli, emulator: Any, env_file: Path) -> None:
    env_file.parent.mkdir()
    r = provision(cli, env_file, "--redirect-uri", "https://b.example.org/")
    assert r.returncode == 2, r
    assert "--url" in r.json["error"]["message"] and "--redirect-uri" in r.json["error"]["message"]
    assert cypht_apps(emulator) == []
    both = provision(cli, env_file, "--redirect-uri", "https://b.example.org/", "--redirect-uri", URL + "/")
    assert both.returncode == 0, both


# 14. deprovision leaves no header behind; other .env files are named -----------------------------------

def test_deprovision_then_provision_leaves_one_header(cli: Cli, env_file: Path) -> None:
    env_file.parent.mkdir()
    env_file.write_text("APP_NAME=Cypht\n")
    assert provision(cli, env_file).returncode == 0
    assert cli("deprovision", "--env-file", str(env_file), "--yes").returncode == 0
    left = read_env(env_file)
    assert not [k for k in left if k.startswith(("OUTLOOK_", "OFFICE365_"))], left  # endpoints it wrote too
    assert provision(cli, env_file).returncode == 0
    assert env_file.read_text().count("managed by cypht-azure") == 1


def test_deprovision_warns_about_another_env_with_a_live_secret(cli: Cli, tmp_path: Path) -> None:
    first, second = tmp_path / "one" / ".env", tmp_path / "two" / ".env"
    first.parent.mkdir()
    second.parent.mkdir()
    made = provision(cli, first).json
    assert cli("provision", "--app-id", made["client_id"], "--url", URL, "--env-file", str(second),
               "--no-verify", "--json").returncode == 0
    r = cli("deprovision", "--env-file", str(first), "--dry-run", "--json")
    assert r.returncode == 0, r
    warning = [a for a in r.json["actions"] if "another .env" in a]
    assert len(warning) == 1, r.json["actions"]
