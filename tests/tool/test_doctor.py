"""`doctor` end to end: the real CLI against the emulator over HTTPS, on healthy and broken `.env` files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from cypht_azure import cypht, envdisk
from tests.docs.test_json_schemas import load, validate
from tests.tool.conftest import Cli, delete_app, graph_requests, token_requests
from tests.tool.php import load_with_symfony, require_php
from tests.tool.test_provision import provision


def doctor(cli: Cli, env_file: Path, *extra: str, env: dict[str, str] | None = None) -> Any:
    r = cli("doctor", "--env-file", str(env_file), "--json", *extra, env=env)
    assert r.returncode in (0, 6), r
    assert validate(r.json, load("doctor")) == [], r.stdout
    assert r.json["failing"] == (r.returncode == 6)
    return r


def codes(r: Any, provider: str | None = None) -> set[str]:
    doc = r.json
    found = doc["findings"] if provider is None else next(
        p for p in doc["providers"] if p["provider"] == provider)["findings"]
    return {f["code"] for f in found}


def edit(env_file: Path, **updates: str | None) -> None:
    doc = envdisk.load(env_file)
    env_file.write_text(doc.updated(updates).render(), encoding="utf-8")


def healthy(cli: Cli, emulator: Any, env_file: Path, *extra: str) -> dict[str, Any]:
    """A .env from provision (which creates the app's service principal in its tenant)."""
    env_file.parent.mkdir(exist_ok=True)
    r = provision(cli, env_file, *extra)
    assert r.returncode == 0, r
    assert emulator.directory.get_service_principal(r.json["client_id"]) is not None
    return dict(r.json)


def test_healthy_env_exits_0_in_one_graph_request(cli: Cli, emulator: Any, env_file: Path) -> None:
    app = healthy(cli, emulator, env_file)
    emulator.clear_log()
    r = doctor(cli, env_file)
    assert r.returncode == 0, r
    doc = r.json
    assert doc["works"] and doc["findings"] == []
    assert [(m, p.split("?")[0]) for m, p in graph_requests(emulator)] == [
        ("GET", f"/v1.0/applications(appId='{app['client_id']}')")]
    assert doc["graph_requests"] == 1
    grants = [e.grant_type for e in token_requests(emulator)]
    # the sign-in and one secret check for both blocks; then, per block, Cypht's code redemption
    assert sorted(grants) == ["authorization_code"] * 2 + ["client_credentials"] * 2
    assert doc["rehearsed"]
    for p in doc["providers"]:
        assert p["works"] and p["secret_check"] == "accepted"
        assert [(s["name"], s["ok"], s["status"]) for s in p["steps"]] == [
            ("authorize", True, 302), ("redeem", True, 200), ("refresh", None, None)]
        assert "no refresh token" in p["steps"][1]["answer"]
        assert p["secret_key_id"] == app["secret_key_id"]
        assert p["authorize_url"].startswith(
            "https://login.live.com/oauth20_authorize.srf?response_type=code&scope=wl.imap&state=nux_authorization"
            f"&approval_prompt=force&access_type=offline&client_id={app['client_id']}"
            "&redirect_uri=https://mail.example.com/")
        assert {k["key"]: k["source"] for k in p["keys"]} == {
            f"{p['provider'].upper()}_{k}": ".env"
            for k in ("CLIENT_ID", "CLIENT_SECRET", "CLIENT_URI", "AUTH_URI", "TOKEN_URI", "REFRESH_URI")}
    secret = envdisk.load(env_file).get("OUTLOOK_CLIENT_SECRET")
    assert secret and secret not in r.stdout + r.stderr
    text = cli("doctor", "--env-file", str(env_file))
    assert text.returncode == 0, text
    assert "Cypht's sign-in should work." in text.stdout
    assert secret not in text.stdout + text.stderr


def test_wrong_secret(cli: Cli, emulator: Any, env_file: Path) -> None:
    healthy(cli, emulator, env_file)
    edit(env_file, OUTLOOK_CLIENT_SECRET="Wrong8Q~" + "x" * 32)
    r = doctor(cli, env_file)
    assert r.returncode == 6
    assert codes(r, "outlook") == {"secret-rejected", "rehearsal-failed"}
    assert "AADSTS7000215" in r.json["findings"][0]["message"]
    redeem = r.json["providers"][0]["steps"][1]
    assert (redeem["name"], redeem["status"]) == ("redeem", 401) and "invalid_client" in redeem["answer"]
    assert codes(r, "office365") == set()


def test_unregistered_redirect_uri_names_the_near_miss(cli: Cli, emulator: Any, env_file: Path) -> None:
    healthy(cli, emulator, env_file)
    edit(env_file, OFFICE365_CLIENT_URI="https://mail.example.com")
    r = doctor(cli, env_file)
    assert r.returncode == 6
    assert codes(r, "office365") == {"redirect-mismatch", "rehearsal-failed"}
    assert "registered: https://mail.example.com/" in r.json["findings"][0]["message"]
    authorize = r.json["providers"][1]["steps"][0]
    assert "/err.srf" in authorize["answer"] and "redirect_uri" in authorize["answer"]  # never back to Cypht


@pytest.mark.parametrize(("updates", "expected"), [
    ({"OUTLOOK_CLIENT_SECRET": ""}, {"missing-keys"}),
    ({"OUTLOOK_CLIENT_SECRET": None}, {"missing-keys"}),
    ({"OUTLOOK_CLIENT_URI": ""}, {"missing-keys", "redirect-mismatch"}),
    ({"OUTLOOK_CLIENT_ID": ""}, {"missing-keys"}),  # nothing to replay without a client ID
    ({"OUTLOOK_TOKEN_URI": "https://login.live.com/oauth20_authorize.srf"}, {"endpoint-invalid"}),
    ({"OUTLOOK_AUTH_URI": "https://login.microsoftonline.com/common/oauth2/v2.0/authorize"},
     {"scope-invalid", "endpoints-mismatch"}),
    ({"OUTLOOK_CLIENT_URI": "https://mail.example.com/?page=home&x=1"}, {"client-uri-unusable", "redirect-mismatch"}),
])
def test_broken_keys(cli: Cli, emulator: Any, env_file: Path, updates: dict[str, str | None],
                     expected: set[str]) -> None:
    healthy(cli, emulator, env_file)
    edit(env_file, **updates)
    r = doctor(cli, env_file)
    assert r.returncode == 6
    replayed = "OUTLOOK_CLIENT_ID" not in updates
    assert codes(r, "outlook") == expected | ({"rehearsal-failed"} if replayed else set())
    assert codes(r, "office365") == set()


def test_empty_client_uri_means_cyphts_default(cli: Cli, emulator: Any, env_file: Path) -> None:
    healthy(cli, emulator, env_file)
    edit(env_file, OUTLOOK_CLIENT_URI="")
    outlook = doctor(cli, env_file).json["providers"][0]
    assert outlook["client_uri"] == "http://localhost/?page=home"
    assert {k["key"]: k["source"] for k in outlook["keys"]}["OUTLOOK_CLIENT_URI"] == "default"


def test_single_tenant_app_does_not_fit_the_live_endpoints(cli: Cli, emulator: Any, env_file: Path) -> None:
    healthy(cli, emulator, env_file, "--audience", "single-tenant")
    # provision writes the tenant's v2.0 endpoints for this audience: put Cypht's Live defaults back.
    live = {f"{p}_{k}": v for p in ("OUTLOOK", "OFFICE365") for k, v in cypht.DEFAULT_ENDPOINTS.items()}
    edit(env_file, **live)
    r = doctor(cli, env_file)
    assert r.returncode == 6
    assert codes(r) == {"endpoint-audience", "rehearsal-failed"}
    assert "unauthorized_client" in r.json["findings"][0]["message"]
    assert "unauthorized_client" in r.json["providers"][0]["steps"][0]["answer"]


def test_v2_endpoints_name_the_scope_and_the_audience(cli: Cli, emulator: Any, env_file: Path) -> None:
    healthy(cli, emulator, env_file, "--audience", "single-tenant")
    v2 = "https://login.microsoftonline.com/common/oauth2/v2.0/"
    edit(env_file, OFFICE365_AUTH_URI=v2 + "authorize", OFFICE365_TOKEN_URI=v2 + "token",
         OFFICE365_REFRESH_URI=v2 + "token")
    r = doctor(cli, env_file, "--provider", "office365")
    assert r.returncode == 6
    assert codes(r) == {"scope-invalid", "endpoint-audience", "rehearsal-failed"}
    assert any("AADSTS50194" in f["message"] for f in r.json["findings"])


def test_shadowed_environment_variable(cli: Cli, emulator: Any, env_file: Path) -> None:
    healthy(cli, emulator, env_file)
    r = doctor(cli, env_file, env={"OUTLOOK_CLIENT_SECRET": "Other8Q~" + "y" * 32,
                                   "OFFICE365_CLIENT_URI": "https://mail.example.com/"})
    assert r.returncode == 6
    outlook, office = r.json["providers"]
    assert outlook["shadowed"] == ["OUTLOOK_CLIENT_SECRET"]
    assert codes(r, "outlook") == {"env-shadowed", "secret-rejected", "rehearsal-failed"}
    rejected = next(f for f in outlook["findings"] if f["code"] == "secret-rejected")
    assert "in the environment Cypht runs in" in rejected["fix"]  # rotating .env would not help
    assert office["shadowed"] == ["OFFICE365_CLIENT_URI"]
    assert codes(r, "office365") == {"env-shadowed-same"}
    assert office["works"]


def test_expiring_secret_against_warn_within(cli: Cli, emulator: Any, env_file: Path) -> None:
    healthy(cli, emulator, env_file, "--secret-lifetime", "10d")
    soon = doctor(cli, env_file)
    assert soon.returncode == 6
    assert codes(soon) == {"secret-expiring"}
    assert all(p["works"] for p in soon.json["providers"])  # it works today; exit 6 says: act now
    assert doctor(cli, env_file, "--warn-within", "5d").returncode == 0


def test_deleted_app_and_missing_service_principal(cli: Cli, emulator: Any, env_file: Path) -> None:
    env_file.parent.mkdir()
    app = provision(cli, env_file).json
    from cypht_azure.emulator.models import SYSTEM

    emulator.directory.sp_delete(SYSTEM, ("appId", app["client_id"]))
    missing = doctor(cli, env_file)
    assert missing.returncode == 6 and codes(missing) == {"service-principal-missing"}
    assert emulator.directory.get_service_principal(app["client_id"]) is None  # doctor changes nothing
    delete_app(emulator, app["object_id"])
    r = doctor(cli, env_file)
    assert r.returncode == 6
    assert codes(r) == {"app-deleted", "rehearsal-failed"}
    assert f"cypht-azure restore --app-id {app['client_id']}" in r.json["findings"][0]["fix"]


def test_untouched_block_is_not_configured(cli: Cli, emulator: Any, env_file: Path) -> None:
    healthy(cli, emulator, env_file, "--provider", "outlook")
    r = doctor(cli, env_file)
    assert r.returncode == 0, r
    assert codes(r) == {"provider-not-configured"}
    assert [p["configured"] for p in r.json["providers"]] == [True, False]
    nothing = env_file.parent / "example.env"
    nothing.write_text("OUTLOOK_CLIENT_ID=\nOUTLOOK_CLIENT_SECRET=\nOUTLOOK_CLIENT_URI=http://localhost/?page=home\n",
                       encoding="utf-8")
    emulator.clear_log()
    r = doctor(cli, nothing)
    assert r.returncode == 6 and r.json["tenant_id"] is None
    assert emulator.request_log == []  # nothing to ask Entra about


def test_missing_env_file_is_bad_input(cli: Cli, env_file: Path) -> None:
    r = cli("doctor", "--env-file", str(env_file), "--json")
    assert r.returncode == 2, r
    assert validate(r.json, load("error")) == []


def test_values_are_the_ones_cyphts_loader_gives(cli: Cli, emulator: Any, env_file: Path) -> None:
    """Cypht's own loader and env() rule, run by PHP with the same environment, give doctor's values."""
    require_php()
    healthy(cli, emulator, env_file)
    with env_file.open("a", encoding="utf-8") as f:
        f.write("OFFICE365_REFRESH_URI=\nOUTLOOK_CLIENT_URI=\"https://mail.example.com/\" # quoted\n")
    environ = {"OUTLOOK_CLIENT_ID": "00000000-0000-0000-0000-00000000abcd", "OFFICE365_CLIENT_URI": ""}
    r = doctor(cli, env_file, env=environ)
    defaults = {"CLIENT_ID": "", "CLIENT_SECRET": "", "CLIENT_URI": "http://localhost/?page=home",
                "AUTH_URI": "https://login.live.com/oauth20_authorize.srf",
                "TOKEN_URI": "https://login.live.com/oauth20_token.srf",
                "REFRESH_URI": "https://login.live.com/oauth20_token.srf"}
    wanted = {f"{p}_{k}": d for p in ("OUTLOOK", "OFFICE365") for k, d in defaults.items() if k != "CLIENT_SECRET"}
    raw = load_with_symfony(env_file, list(wanted), environ)
    cypht_env = {k: v if v not in (None, "", "0") else wanted[k] for k, v in raw.items()}  # env(): getenv() ?: default
    seen = {k["key"]: k["value"] for p in r.json["providers"] for k in p["keys"] if k["value"] is not None}
    # a value the process environment sets is named, never shown (issue 18 rule 6)
    from_environment = {k["key"] for p in r.json["providers"] for k in p["keys"] if k["source"] == "environment"}
    assert from_environment == {"OUTLOOK_CLIENT_ID"}
    assert seen == {k: v for k, v in cypht_env.items() if k not in from_environment}
    assert seen["OFFICE365_CLIENT_URI"] == "http://localhost/?page=home"
    assert codes(r, "outlook") >= {"env-shadowed", "app-not-found", "rehearsal-failed"}


def test_expiry_is_read_from_the_hint_when_the_secret_id_is_missing(cli: Cli, emulator: Any, env_file: Path) -> None:
    app = healthy(cli, emulator, env_file)
    edit(env_file, OUTLOOK_CLIENT_SECRET_ID=None)
    outlook = doctor(cli, env_file).json["providers"][0]
    assert outlook["secret_key_id"] == app["secret_key_id"]
    expires = dt.datetime.fromisoformat(outlook["secret_expires"].replace("Z", "+00:00"))
    assert expires > dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=300)


def test_endpoints_at_the_emulator_are_replayed_there_and_other_hosts_refused(cli: Cli, emulator: Any,
                                                                               env_file: Path) -> None:
    healthy(cli, emulator, env_file)
    base = emulator.info["authority_host"].replace("127.0.0.1", "localhost")  # a name on its certificate
    edit(env_file, OUTLOOK_AUTH_URI=f"{base}/oauth20_authorize.srf", OUTLOOK_TOKEN_URI=f"{base}/oauth20_token.srf",
         OUTLOOK_REFRESH_URI=f"{base}/oauth20_token.srf",
         OFFICE365_AUTH_URI="https://login.example.net/oauth20_authorize.srf")
    r = doctor(cli, env_file)
    assert r.returncode == 6
    outlook, office = r.json["providers"]
    assert outlook["works"] and [s["ok"] for s in outlook["steps"]] == [True, True, None]
    assert codes(r, "office365") == {"endpoint-invalid", "endpoints-mismatch"}
    assert office["steps"][0]["ok"] is None  # not replayed: neither Microsoft's host nor the emulator's
