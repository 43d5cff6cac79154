"""Cypht's contract as pure functions: redirect URIs, names, audiences, the registration body."""

from __future__ import annotations

import pytest

from cypht_azure import cypht


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://mail.example.com", "https://mail.example.com/"),
        ("https://mail.example.com/", "https://mail.example.com/"),
        ("https://Mail.Example.com/cypht", "https://mail.example.com/cypht/"),
        ("https://example.com:8443/webmail/", "https://example.com:8443/webmail/"),
        ("http://localhost:8800", "http://localhost:8800/"),
        ("HTTPS://mail.example.com", "https://mail.example.com/"),
    ],
)
def test_redirect_uri_is_the_bare_base_url(url: str, expected: str) -> None:
    assert cypht.redirect_uri_for(url) == expected


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("https://mail.example.com/?page=home", "query string"),
        ("https://mail.example.com/?", "query string"),
        ("mail.example.com", "no scheme"),
        ("", "empty"),
        ("https://mail.example.com/#x", "'#'"),
        ("https://", "no host"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(url: str, fragment: str) -> None:
    with pytest.raises(cypht.InvalidInput, match=fragment):
        cypht.redirect_uri_for(url)


@pytest.mark.parametrize(
    ("uri", "audience", "fragment"),
    [
        ("https://x.example/?page=home", "AzureADandPersonalMicrosoftAccount", "query string"),
        ("https://x.example/?page=home", "PersonalMicrosoftAccount", "query string"),
        ("http://x.example/", "AzureADMyOrg", "http:// is allowed only for localhost"),
        ("https://x.example/a b/", "AzureADMyOrg", "white space"),
        ("https://x.example/a;b/", "AzureADMyOrg", ";"),
        ("https://x.example/a!/", "AzureADMyOrg", "!"),
        ("https://x.example/?a=1&b=2", "AzureADMyOrg", "'&'"),
        ("https://x.example/#a", "AzureADMyOrg", "'#'"),
        ("https://*.example/", "AzureADMyOrg", "wildcard"),
        ("https://x.example/" + "a" * 250, "AzureADMyOrg", "at most 256"),
        ("ftp://x.example/", "AzureADMyOrg", "not an absolute https"),
    ],
)
def test_redirect_uri_problems(uri: str, audience: str, fragment: str) -> None:
    problems = cypht.redirect_uri_problems(uri, audience)
    assert any(fragment in p for p in problems), problems


def test_query_is_fine_for_work_or_school_only() -> None:
    assert cypht.redirect_uri_problems("https://x.example/?page=home", "AzureADMyOrg") == []
    assert cypht.redirect_uri_problems("http://localhost/", "AzureADandPersonalMicrosoftAccount") == []


def test_unique_name_is_stable_and_differs_per_url() -> None:
    a = cypht.unique_name_for("https://mail.example.com/")
    assert a == cypht.unique_name_for("https://mail.example.com/")
    assert a != cypht.unique_name_for("https://mail.example.com/other/")
    assert a.startswith("cypht-azure-mail-example-com-")


@pytest.mark.parametrize(
    ("given", "graph"),
    [("any", "AzureADandPersonalMicrosoftAccount"), ("single-tenant", "AzureADMyOrg"),
     ("AzureADMultipleOrgs", "AzureADMultipleOrgs"), ("PERSONAL", "PersonalMicrosoftAccount")],
)
def test_audience_names(given: str, graph: str) -> None:
    assert cypht.parse_audience(given) == graph


def test_unknown_audience_lists_the_choices() -> None:
    with pytest.raises(cypht.InvalidInput, match="single-tenant"):
        cypht.parse_audience("everyone")


def test_display_name_limits_depend_on_audience() -> None:
    cypht.validate_display_name("x" * 120, "AzureADMyOrg")
    with pytest.raises(cypht.InvalidInput, match="at most 90"):
        cypht.validate_display_name("x" * 91, "AzureADandPersonalMicrosoftAccount")


def test_registration_body_for_personal_accounts() -> None:
    body = cypht.desired_registration(
        display_name="Cypht", unique_name="u", audience="AzureADandPersonalMicrosoftAccount",
        redirect_uris=["https://m.example/"], url="https://m.example",
    )
    assert body["api"] == {"requestedAccessTokenVersion": 2}
    assert body["tags"] == ["cypht-azure"]
    access = body["requiredResourceAccess"]
    assert isinstance(access, list)
    ids = {a["id"] for a in access[0]["resourceAccess"]}
    assert ids == set(cypht.DELEGATED_SCOPES.values())
    assert access[0]["resourceAppId"] == "00000003-0000-0000-c000-000000000000"


def test_registration_body_for_work_accounts_has_no_token_version() -> None:
    body = cypht.desired_registration(
        display_name="Cypht", unique_name="u", audience="AzureADMyOrg",
        redirect_uris=["https://m.example/"], url="https://m.example",
    )
    assert "api" not in body


def test_merge_required_access_keeps_other_permissions() -> None:
    other = {"resourceAppId": "00000002-0000-0ff1-ce00-000000000000", "resourceAccess": [{"id": "x", "type": "Scope"}]}
    graph = {"resourceAppId": cypht.GRAPH_APP_ID, "resourceAccess": [{"id": "e1fe6dd8-ba31-4d61-89e7-88639da4683d", "type": "Scope"}]}
    merged = cypht.merge_required_access([other, graph])
    assert merged is not None
    assert merged[0] == other
    ids = [a["id"] for a in merged[1]["resourceAccess"]]  # type: ignore[index]
    assert ids[0] == "e1fe6dd8-ba31-4d61-89e7-88639da4683d"
    assert set(cypht.DELEGATED_SCOPES.values()) <= set(ids)
    assert cypht.merge_required_access(merged) is None


def test_provider_keys() -> None:
    keys = cypht.provider_keys("office365")
    assert keys.client_id == "OFFICE365_CLIENT_ID"
    assert keys.secret_id == "OFFICE365_CLIENT_SECRET_ID"
    assert cypht.parse_providers("both") == ["outlook", "office365"]
    with pytest.raises(cypht.InvalidInput):
        cypht.parse_providers("gmail")
