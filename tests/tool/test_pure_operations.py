"""Pure functions of the operations, graph and auth layers (no server needed)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest

from cypht_azure import auth
from cypht_azure.errors import InputError
from cypht_azure.graph import _graph_error, _retry_after
from cypht_azure.operations.core.provision import ProvisionRequest, prepare, registration_patch
from cypht_azure.operations.core.session import parse_time

URL = "https://mail.example.com"


def plan(**kw: object):  # type: ignore[no-untyped-def]
    kw.setdefault("url", URL)
    return prepare(ProvisionRequest(env_file=Path(".env"), **kw))  # type: ignore[arg-type]


def test_prepare_derives_everything_from_the_url() -> None:
    p = plan()
    assert p.redirect_uris == ["https://mail.example.com/"]
    assert p.display_name == "Cypht webmail (mail.example.com)"
    assert p.body["signInAudience"] == "AzureADandPersonalMicrosoftAccount"
    assert p.unique_name.startswith("cypht-azure-mail-example-com-")


@pytest.mark.parametrize(
    ("kw", "fragment"),
    [
        ({"url": "https://mail.example.com/?page=home"}, "query string"),
        ({"url": None}, "--url"),
        ({"redirect_uris": ["https://a.example/?page=home"]}, "query string"),
        ({"redirect_uris": ["https://a.example/", "https://a.example/"]}, "twice"),
        ({"audience": "everyone"}, "sign-in audience"),
        ({"name": "x" * 91}, "at most 90"),
        ({"secret_lifetime": dt.timedelta(days=800)}, "2 years"),
        ({"secret_lifetime": dt.timedelta(0)}, "positive"),
        ({"app_id": "not-a-guid"}, "client) ID"),
    ],
)
def test_prepare_refuses_bad_input(kw: dict[str, object], fragment: str) -> None:
    with pytest.raises(InputError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        plan(**kw)


def test_query_allowed_for_single_tenant() -> None:
    p = plan(url=None, redirect_uris=["https://a.example/?page=home"], audience="single-tenant")
    assert p.redirect_uris == ["https://a.example/?page=home"]


def test_url_must_be_among_the_redirect_uris_given() -> None:
    with pytest.raises(InputError, match="--url"):
        plan(redirect_uris=["https://a.example/"])
    assert plan(redirect_uris=["https://a.example/", URL + "/"]).redirect_uris == ["https://a.example/", URL + "/"]


def existing_app(**over: object) -> dict[str, object]:
    p = plan()
    app: dict[str, object] = {"id": "o", "appId": "a", **json.loads(json.dumps(p.body))}
    app["web"] = {"redirectUris": ["https://mail.example.com/"], "homePageUrl": None, "logoutUrl": None,
                  "implicitGrantSettings": {"enableIdTokenIssuance": False, "enableAccessTokenIssuance": False},
                  "redirectUriSettings": []}
    app.update(over)
    return app


def test_no_patch_when_nothing_drifted() -> None:
    assert registration_patch(existing_app(), plan()) == {}


def test_patch_merges_uris_and_keeps_others() -> None:
    app = existing_app(web={"redirectUris": ["https://other.example/"], "logoutUrl": "https://x/"})
    patch = registration_patch(app, plan())
    assert patch["web"]["redirectUris"] == ["https://other.example/", "https://mail.example.com/"]
    assert patch["web"]["logoutUrl"] == "https://x/"
    assert "redirectUriSettings" not in patch["web"]


def test_patch_repairs_audience_and_token_version() -> None:
    app = existing_app(signInAudience="AzureADMyOrg", api={"requestedAccessTokenVersion": None, "knownClientApplications": []})
    patch = registration_patch(app, plan())
    assert patch["signInAudience"] == "AzureADandPersonalMicrosoftAccount"
    assert patch["api"] == {"requestedAccessTokenVersion": 2, "knownClientApplications": []}


def test_patch_refuses_audience_change_that_others_uris_forbid() -> None:
    app = existing_app(signInAudience="AzureADMyOrg",
                       web={"redirectUris": ["https://mail.example.com/", "https://x.example/?page=home"]})
    with pytest.raises(InputError, match=r"x\.example/\?page=home"):
        registration_patch(app, plan())


def test_patch_adds_tag_and_permissions_and_name_only_when_given() -> None:
    app = existing_app(tags=["team"], requiredResourceAccess=[], displayName="Renamed by admin")
    patch = registration_patch(app, plan())
    assert patch["tags"] == ["team", "cypht-azure"]
    assert len(patch["requiredResourceAccess"]) == 1
    assert "displayName" not in patch
    assert registration_patch(app, plan(name="Cypht"))["displayName"] == "Cypht"


@pytest.mark.parametrize(("value", "expected"), [("3", 3.0), ("2.128", 2.128), (None, 7.0), ("soon", 7.0), ("-4", 0.0)])
def test_retry_after(value: str | None, expected: float) -> None:
    assert _retry_after(value, 7.0) == pytest.approx(expected)


def test_graph_error_reads_the_envelope() -> None:
    err = _graph_error(403, {"error": {"code": "Authorization_RequestDenied", "message": "Insufficient"}}, "POST", "x", "rid")
    assert (err.status, err.code, err.request_id) == (403, "Authorization_RequestDenied", "rid")
    assert "rid" in str(err)
    assert _graph_error(502, None, "GET", "x", None).code == "UnexpectedResponse"


def test_parse_time_handles_graphs_seven_digits() -> None:
    t = parse_time("2025-04-08T09:40:20.2882444Z")
    assert t == dt.datetime(2025, 4, 8, 9, 40, 20, 288244, tzinfo=dt.timezone.utc)
    assert parse_time("2025-04-08T09:40:20Z") is not None
    assert parse_time(None) is None and parse_time("garbage") is None


def test_endpoints() -> None:
    e = auth.resolve_endpoints("usgov", authority_host=None, graph_url=None, ca_file=None)
    assert e.graph_url == "https://graph.microsoft.us/v1.0" and not e.custom_authority
    custom = auth.resolve_endpoints("public", authority_host="127.0.0.1:8443", graph_url="https://127.0.0.1:8443/v1.0/", ca_file=None)
    assert custom.authority_host == "https://127.0.0.1:8443" and custom.custom_authority
    assert custom.graph_url == "https://127.0.0.1:8443/v1.0"
    with pytest.raises(ValueError, match="https"):
        auth.resolve_endpoints("public", authority_host="http://x", graph_url=None, ca_file=None)
    with pytest.raises(ValueError, match="--cloud"):
        auth.resolve_endpoints("germany", authority_host=None, graph_url=None, ca_file=None)
    with pytest.raises(ValueError, match="--ca-file"):
        auth.resolve_endpoints("public", authority_host=None, graph_url=None, ca_file="/nonexistent.pem")


def test_token_claims_and_sign_in_hints() -> None:
    payload = base64.urlsafe_b64encode(json.dumps({"tid": "t1", "appid": "a"}).encode()).decode().rstrip("=")
    assert auth.token_claims(f"x.{payload}.y")["tid"] == "t1"
    assert auth.token_claims("garbage") == {}
    msg = auth.explain_sign_in_failure(Exception("AADSTS7000215: Invalid client secret provided."))
    assert "value, not its ID" in msg
    assert "--ca-file" in auth.explain_sign_in_failure(Exception("[SSL: CERTIFICATE_VERIFY_FAILED]"))
