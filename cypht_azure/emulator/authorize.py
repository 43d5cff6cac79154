"""The authorization-code flow: authorize-request checks, sign-in and consent, codes and their redemption.

Both endpoint families Cypht can be pointed at: the v2 ``/{tenant}/oauth2/v2.0/{authorize,token}``
and login.live.com's ``/oauth20_{authorize,token}.srf``. The order of the checks and every error's
delivery follow signin.md §2.4-§2.8, §3 and §4; the emulator's sign-in page and ``--sign-in auto``
both end in :meth:`CodeFlow.sign_in`, so the two cannot disagree.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import exceptions as exc
from . import schema
from .identity import audience_for, resource_of
from .models import Directory
from .tenants import Account, Authority, Tenants

if TYPE_CHECKING:
    from .identity import TokenService

CODE_LIFETIME = 600  # "about 10 minutes" (signin.md §2.2); the option auth_code_lifetime overrides it
REDEEMED_CODE_MEMORY = 3600  # how long a redeemed code is remembered, to answer 54005
REFRESH_INACTIVITY = 90 * 86400
SPA_REFRESH_LIFETIME = 86400
OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
OFFLINE_SCOPES = frozenset({"offline_access", "wl.offline_access"})
LIVE_SCOPES = frozenset({
    "wl.basic", "wl.emails", "wl.imap", "wl.offline_access", "wl.signin", "wl.birthday", "wl.calendars",
    "wl.calendars_update", "wl.contacts_birthday", "wl.contacts_create", "wl.contacts_calendars",
    "wl.contacts_photos", "wl.contacts_skydrive", "wl.events_create", "wl.phone_numbers", "wl.photos",
    "wl.postal_addresses", "wl.skydrive", "wl.skydrive_update", "wl.work_profile",
    "offline_access", "openid", "email", "profile",
})
OUTLOOK_RESOURCES = ("https://outlook.office.com", "https://outlook.office365.com")
OUTLOOK_PERMISSIONS = ("IMAP.AccessAsUser.All", "SMTP.Send", "POP.AccessAsUser.All", "EWS.AccessAsUser.All",
                       "Mail.Read", "Mail.ReadWrite", "Mail.Send", "User.Read")
GRAPH_URL = "https://graph.microsoft.com"
_SCOPE_SYNTAX = re.compile(r"^[A-Za-z0-9._~:/\-]+$")
PERSONAL_AUDIENCES = frozenset(schema.PERSONAL_AUDIENCES)
ENTRA_ONLY_AUDIENCES = frozenset({"AzureADMyOrg", "AzureADMultipleOrgs"})
RESPONSE_MODES = ("query", "fragment", "form_post")


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def pkce_matches(challenge: str, method: str, verifier: str | None) -> bool:
    """RFC 7636 §4.6: S256 is BASE64URL(SHA256(verifier)) without padding; anything else compares as plain
    (signin.md §2.1: both are accepted, and a challenge without a method is plain)."""
    if not verifier:
        return False
    if method.upper() == "S256":
        digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
        expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        return hmac.compare_digest(expected, challenge)
    return hmac.compare_digest(verifier, challenge)


@dataclass(frozen=True)
class AuthorizeRequest:
    """An authorize request whose client and redirect URI have been checked: errors may now go back to it."""

    authority: Authority
    app_id: str
    app_name: str
    audience: str
    redirect_uri: str
    platform: str  # web | spa | publicClient
    query: tuple[tuple[str, str], ...]

    def get(self, name: str) -> str | None:
        return next((v for k, v in self.query if k == name), None)

    @property
    def state(self) -> str | None:
        return self.get("state")

    @property
    def response_mode(self) -> str:
        mode = self.get("response_mode")
        return mode if mode in RESPONSE_MODES and not self.authority.is_live else "query"

    @property
    def scopes(self) -> list[str]:
        raw = self.get("scope") or ""
        return [s for s in re.split(r"[ ,]+" if self.authority.is_live else r" +", raw.strip()) if s]


@dataclass(frozen=True)
class Issued:
    """Success: what goes back to the redirect URI."""

    params: dict[str, str]


@dataclass(frozen=True)
class ConsentNeeded:
    account: Account
    scopes: list[str]


def match_redirect_uri(app: Mapping[str, Any], uri: str, *, exact_only: bool) -> str | None:
    """The platform whose registered redirect URIs contain ``uri`` (exact, case-sensitive; signin.md §2.8).

    At v2 the port of an ``http://localhost`` (or 127.0.0.1) registration does not count.
    """
    for platform in ("web", "spa", "publicClient"):
        registered = (app.get(platform) or {}).get("redirectUris") or []
        if uri in registered:
            return platform
        if exact_only:
            continue
        sent = urlsplit(uri)
        if sent.scheme != "http" or sent.hostname not in ("localhost", "127.0.0.1"):
            continue
        for candidate in registered:
            reg = urlsplit(candidate)
            if (reg.scheme, reg.hostname, reg.path or "/", reg.query) == (
                    sent.scheme, sent.hostname, sent.path or "/", sent.query):
                return platform
    return None


class CodeFlow:
    """Authorize checks, sign-in, consent, codes, and the two grants that redeem them."""

    def __init__(self, directory: Directory, tokens: TokenService) -> None:
        self.directory = directory
        self.tokens = tokens
        self.tenants = Tenants(directory)

    # ================================================================ authorize

    def check_client(self, authority: Authority, query: Mapping[str, str]) -> AuthorizeRequest:
        """Steps 1-3 of signin.md §2.4: client and redirect URI. Raises only ErrorPage."""
        live = authority.is_live
        client_id = (query.get("client_id") or "").strip()
        if not client_id:
            if live:
                raise exc.live_page("invalid_request",
                                    "The provided request must include a 'client_id' input parameter.")
            raise exc.missing_parameter_page("client_id")
        app = self.directory.app_by_app_id(client_id)
        audience = str(app.get("signInAudience")) if app else ""
        if live:
            if app is None or audience not in PERSONAL_AUDIENCES:
                raise exc.not_for_consumers_page()
        elif app is None:
            hint = self.tenants.find(query.get("login_hint") or "")
            if authority.kind == "consumers" or (authority.kind == "common" and hint and hint.kind == "personal"):
                raise exc.not_for_consumers_page()
            raise exc.unknown_client_page(client_id, self.tenants.work.display_name)
        assert app is not None
        uri = query.get("redirect_uri") or ""
        if not uri:
            if live:
                raise exc.live_page("invalid_request",
                                    "The provided request must include a 'redirect_uri' input parameter.")
            raise exc.no_reply_address_page()
        parts = urlsplit(uri)
        if not (parts.scheme and parts.netloc):
            raise exc.live_page("invalid_request", exc.LIVE_BAD_REDIRECT) if live else exc.not_absolute_redirect_page()
        platform = match_redirect_uri(app, uri, exact_only=live)
        if platform is None:
            if live:
                raise exc.live_page("invalid_request", exc.LIVE_BAD_REDIRECT)
            raise exc.redirect_mismatch_page(uri, app["appId"])
        return AuthorizeRequest(authority, app["appId"], str(app.get("displayName") or ""), audience, uri, platform,
                                tuple(query.items()))

    def check_protocol(self, req: AuthorizeRequest, *, session: bool) -> None:
        """Step 4: errors that go back to the checked redirect URI, before anyone signs in."""
        live = req.authority.is_live
        response_type = req.get("response_type")
        if not response_type:
            raise exc.RedirectError("invalid_request",
                                    "The request body must contain the following parameter: 'response_type'.", 900144)
        if response_type.split() != ["code"]:
            raise exc.RedirectError(
                "unsupported_response_type",
                f"The provided value for the input parameter 'response_type' is not allowed for this client. "
                f"Expected value is 'code'. Received value: '{response_type}'.", None if live else 70005)
        mode = req.get("response_mode")
        if mode is not None and not live and mode not in RESPONSE_MODES:
            raise exc.RedirectError("invalid_request",
                                    f"The value '{mode}' for the input parameter 'response_mode' is not supported.",
                                    70007)
        scopes = req.scopes
        if not scopes:
            raise exc.RedirectError("invalid_scope",
                                    "The provided request must include a 'scope' input parameter.", None if live else 70011)
        if live:
            unknown = [s for s in scopes if s.lower() not in LIVE_SCOPES and not s.lower().startswith("onedrive.")]
            if unknown:
                raise exc.RedirectError("invalid_scope", "The provided value for the input parameter 'scope' is not valid.")
        else:
            self._check_scope_syntax(scopes)
            self._check_endpoint_audience(req)
        if req.get("prompt") == "none" and not session:
            raise exc.RedirectError("login_required", "A silent sign-in request was sent but no user is signed in.",
                                    50058)

    @staticmethod
    def _check_scope_syntax(scopes: list[str]) -> None:
        for scope in scopes:
            if not _SCOPE_SYNTAX.match(scope) or scope.endswith("/") or scope.startswith("/"):
                raise exc.scope_format_invalid(scope)
        defaults = [s for s in scopes if s.endswith("/.default")]
        if defaults and len([s for s in scopes if s.lower() not in OIDC_SCOPES]) > 1:
            raise exc.RedirectError(
                "invalid_scope",
                f"The provided value for the input parameter 'scope' is not valid. The scope {' '.join(scopes)} is "
                "not valid. static scope limit exceeded.", 70011)

    @staticmethod
    def _check_endpoint_audience(req: AuthorizeRequest) -> None:
        """signInAudience against the tenant segment (signin.md §2.6), independent of the account."""
        kind = req.authority.kind
        if kind == "consumers" and req.audience in ENTRA_ONLY_AUDIENCES:
            raise exc.entra_only_at_consumers(req.app_id, req.app_name)
        if req.audience == "PersonalMicrosoftAccount":
            if kind == "common":
                raise exc.consumer_only_at_common()
            if kind in ("organizations", "tenant"):
                raise exc.RedirectError("invalid_request",
                                        exc.consumer_only_app_description(req.app_id, req.app_name), 9002331)

    def default_login(self, authority: Authority) -> str:
        """Who ``--sign-in auto`` signs in when the request names nobody (login_hint)."""
        if authority.work:
            return self.directory.seed["admin_user"]
        return "emulator.user@outlook.com"

    # ---------------------------------------------------------------- step 5: the user signs in

    def account_for(self, req: AuthorizeRequest, login: str) -> Account:
        """The account behind what was typed, as this endpoint's login UI sees it (signin.md §2.6, §4.4)."""
        login = login.strip()
        tenants = self.tenants
        authority = req.authority
        if not login:
            raise exc.LoginRefusal("Enter a valid email address, phone number, or Skype name.")
        if not authority.work:  # login.live.com and /consumers: the Microsoft-account login
            account = None if tenants.work.owns(login) else tenants.consumers.account(login)
            if account is None:
                raise exc.LoginRefusal(exc.NO_MICROSOFT_ACCOUNT)
            return account
        found = tenants.find(login)
        if found is None:
            raise exc.LoginRefusal(exc.NO_SUCH_WORK_ACCOUNT)
        if found.kind == "work":
            if authority.kind == "common" and req.audience == "AzureADMyOrg":
                raise exc.single_tenant_at_common(req.app_id, req.app_name)
            return found
        if authority.kind == "tenant":
            raise exc.personal_account_page(found.login)
        if authority.kind == "organizations" or req.audience == "AzureADMultipleOrgs":
            raise exc.LoginRefusal(exc.PERSONAL_NOT_HERE)
        if req.audience == "AzureADMyOrg":
            raise exc.not_for_consumers_page()
        return found

    def _check_scopes_exist(self, req: AuthorizeRequest, account: Account) -> None:
        """Unknown scopes, found once the user is known (signin.md §2.4 step 5, §2.7)."""
        if req.authority.is_live:
            return
        for scope in req.scopes:
            if scope.lower() in OIDC_SCOPES:
                continue
            resource, permission = resource_of(scope)
            audience = audience_for(resource)
            if audience == GRAPH_URL:
                if permission == ".default" or permission.lower() in {p.lower() for p in schema.GRAPH_SCOPES}:
                    continue
                if (account.kind == "personal" and permission.lower().startswith("wl.")
                        and self.directory.option("v2_personal_wl_scopes") == "accept"):
                    continue
                raise exc.scope_not_on_graph(req.app_name, scope)
            if audience in OUTLOOK_RESOURCES:
                if permission == ".default" or permission.lower() in {p.lower() for p in OUTLOOK_PERMISSIONS}:
                    continue
                raise exc.RedirectError("invalid_scope", f"The provided value for the input parameter 'scope' is not "
                                        f"valid. The scope '{scope}' does not exist.", 70011)
            error = exc.resource_not_found(resource, account.tenant_id)
            raise exc.ErrorPage(error.error, error.description, error.aadsts)

    def sign_in(self, req: AuthorizeRequest, login: str, consent: str | None) -> Issued | ConsentNeeded:
        """The user ``login`` signs in and (``consent`` = accept | cancel | None: ask) answers the consent
        prompt. The sign-in page's POST and ``--sign-in auto`` both call this."""
        account = self.account_for(req, login)
        self._check_scopes_exist(req, account)
        if consent is None:
            if req.get("prompt") == "consent" or not self.consented(req, account):
                return ConsentNeeded(account, req.scopes)
            consent = "accept"  # granted before: Entra does not ask again
        if consent != "accept":
            if req.authority.is_live:
                raise exc.RedirectError("access_denied",
                                        "The user has denied access to the scope requested by the client application.")
            raise exc.declined_consent()
        if account.kind == "work" and self.directory.sp_by_app_id(req.app_id) is None:
            # Consent creates the app's service principal in the user's tenant (signin.md §6).
            self.directory.create_service_principal(req.app_id)
        self._remember_consent(req, account)
        return Issued(self._issue_code(req, account))

    # ---------------------------------------------------------------- consent, remembered

    @staticmethod
    def _consent_key(req: AuthorizeRequest, account: Account) -> str:
        return f"{account.kind}:{account.object_id}:{req.app_id.lower()}"

    def consented(self, req: AuthorizeRequest, account: Account) -> bool:
        """Whether this account already consented to every scope asked for, for this app.

        Entra asks once and then only for what is new, unless `prompt=consent` forces the dialog
        (signin.md §2.1). A work account's consent lives with the app's service principal in the
        tenant: when that is deleted (`deprovision`), the consent goes with it and is asked again."""
        with self.directory.store.read() as data:
            entry = data.get("user_consents", {}).get(self._consent_key(req, account))
        if entry is None:
            return False
        if account.kind == "work":
            sp = self.directory.sp_by_app_id(req.app_id)
            if sp is None or sp.get("id") != entry.get("service_principal"):
                return False
        return {s.lower() for s in req.scopes} <= set(entry["scopes"])

    def _remember_consent(self, req: AuthorizeRequest, account: Account) -> None:
        key = self._consent_key(req, account)
        with self.directory.store.write() as data:
            consents = data.setdefault("user_consents", {})
            sp = (self.directory.sp_by_app_id(req.app_id) or {}).get("id") if account.kind == "work" else None
            entry = consents.get(key)
            if entry is None or entry.get("service_principal") != sp:  # a new service principal: start over
                entry = consents[key] = {"scopes": [], "service_principal": sp}
            entry["scopes"] = sorted(set(entry["scopes"]) | {s.lower() for s in req.scopes})
            self.directory.store.mark_dirty()

    def _issue_code(self, req: AuthorizeRequest, account: Account) -> dict[str, str]:
        live = req.authority.is_live
        if account.kind == "personal":
            code = f"M.C5{secrets.randbelow(90) + 10}_BAY.2.U.{uuid.uuid4()}"
        else:
            code = "0.A" + secrets.token_urlsafe(96)
        lifetime = self.directory.option("auth_code_lifetime")
        moment = time.time()
        entry = {
            "client_id": req.app_id, "redirect_uri": req.redirect_uri, "platform": req.platform,
            "scopes": req.scopes, "family": req.authority.family, "account": _account_record(account),
            "expires": moment + float(CODE_LIFETIME if lifetime is None else lifetime), "redeemed": False,
            "nonce": req.get("nonce"),  # echoed in the code's id_token, as Entra does (OIDC Core 3.1.2.1)
            # PKCE (signin.md §2.1): a challenge without a method is a plain one.
            "code_challenge": req.get("code_challenge"),
            "code_challenge_method": req.get("code_challenge_method") or "plain",
        }
        with self.directory.store.write() as data:
            codes = data.setdefault("auth_codes", {})
            for key in [k for k, v in codes.items() if v["expires"] + REDEEMED_CODE_MEMORY < moment]:
                del codes[key]
            codes[_digest(code)] = entry
            self.directory.store.mark_dirty()
        params = {"code": code}
        if req.state is not None:
            params["state"] = req.state
        if not live:
            params["session_state"] = str(uuid.uuid4())
        return params

    # ================================================================ token endpoint

    def token_authority(self, segment: str) -> Authority:
        try:
            return self.tenants.authority(segment)
        except exc.ErrorPage as error:  # the token endpoint answers 400 invalid_request (signin.md §1)
            raise exc.invalid_request(error.description, error.aadsts or 900144) from None

    def redeem(self, authority: Authority, form: Mapping[str, str], basic: tuple[str, str] | None,
               base: str) -> dict[str, Any]:
        """``grant_type=authorization_code``."""
        app = self._client(authority, form, basic)
        code = form.get("code") or ""
        for name in ("code", "redirect_uri"):
            if not form.get(name):
                raise self._missing(authority, name)
        redirect_uri = form["redirect_uri"]
        platform = match_redirect_uri(app, redirect_uri, exact_only=authority.is_live)
        self._authenticate(authority, app, form, basic, platform)
        moment = time.time()
        with self.directory.store.write() as data:
            entry = data.setdefault("auth_codes", {}).get(_digest(code))
            if entry is None:
                raise self._bad_code(authority, personal=code.startswith("M."), expired=False)
            personal = entry["account"]["kind"] == "personal"
            if entry["redeemed"]:
                raise self._live_code_error(False) if authority.is_live else exc.code_redeemed()
            if entry["expires"] <= moment:
                raise self._bad_code(authority, personal=personal, expired=True)
            if entry["client_id"].lower() != app["appId"].lower():
                raise self._live_code_error(False) if authority.is_live else exc.TokenError(
                    400, "invalid_grant", 70000, "Provided grant is invalid or malformed.")
            if entry["redirect_uri"] != redirect_uri:
                if authority.is_live:
                    raise exc.TokenError(400, "invalid_request", 0, exc.LIVE_BAD_REDIRECT)
                raise exc.reply_address_mismatch(redirect_uri, entry["redirect_uri"])
            account = _account_from(entry["account"])
            if entry["family"] != authority.family or not _serves(authority, account, self.tenants.work.tenant_id):
                raise self._live_code_error(False) if authority.is_live else exc.code_for_other_tenant()
            if entry.get("code_challenge") and not pkce_matches(
                    entry["code_challenge"], entry.get("code_challenge_method") or "plain", form.get("code_verifier")):
                raise exc.pkce_mismatch(live=authority.is_live)
            entry["redeemed"] = True
            self.directory.store.mark_dirty()
        scopes = self._token_scopes(entry["scopes"], form.get("scope"))
        return self._tokens(authority, app, account, scopes, entry["platform"], base, nonce=entry.get("nonce"))

    def refresh(self, authority: Authority, form: Mapping[str, str], basic: tuple[str, str] | None,
                base: str) -> dict[str, Any]:
        """``grant_type=refresh_token`` for tokens this flow issued."""
        app = self._client(authority, form, basic)
        token = form.get("refresh_token") or ""
        if not token:
            raise self._missing(authority, "refresh_token")
        with self.directory.store.read() as data:
            entry = data["refresh_tokens"].get(_digest(token))
        platform = entry.get("platform") if entry else match_redirect_uri(
            app, form.get("redirect_uri") or "", exact_only=True)
        self._authenticate(authority, app, form, basic, platform)
        if entry is None or entry.get("flow") != "code" or entry["client_id"].lower() != app["appId"].lower():
            raise self._bad_refresh(authority)
        moment = time.time()
        if moment - float(entry["last_used"]) > REFRESH_INACTIVITY:
            if authority.is_live:
                raise self._bad_refresh(authority)
            raise exc.refresh_inactive(entry["issued"])
        if entry.get("hard_expiry") is not None and moment > float(entry["hard_expiry"]):
            raise exc.spa_refresh_expired(entry["issued"])
        account = _account_from(entry["account"])
        if entry["family"] != authority.family or not _serves(authority, account, self.tenants.work.tenant_id):
            raise self._bad_refresh(authority)
        with self.directory.store.write() as data:
            data["refresh_tokens"][_digest(token)]["last_used"] = moment
            self.directory.store.mark_dirty()
        scopes = self._token_scopes(entry["scopes"], form.get("scope"))
        return self._tokens(authority, app, account, scopes, str(platform), base, entry.get("hard_expiry"))

    # ---------------------------------------------------------------- the checks behind both grants

    def _client(self, authority: Authority, form: Mapping[str, str], basic: tuple[str, str] | None) -> dict[str, Any]:
        client_id = form.get("client_id") or (basic[0] if basic else "")
        if not client_id:
            raise self._missing(authority, "client_id")
        app = self.directory.app_by_app_id(client_id)
        if authority.is_live:
            if app is None or app.get("signInAudience") not in PERSONAL_AUDIENCES:
                raise exc.TokenError(400, "unauthorized_client", 0, exc.NOT_FOR_CONSUMERS)
            return app
        if app is None:
            raise exc.app_not_found(client_id, self.tenants.work.tenant_id)
        if app.get("signInAudience") == "PersonalMicrosoftAccount" and authority.kind != "consumers":
            raise exc.consumer_only_app(app["appId"], str(app.get("displayName")))
        return app

    def _authenticate(self, authority: Authority, app: Mapping[str, Any], form: Mapping[str, str],
                      basic: tuple[str, str] | None, platform: str | None) -> None:
        """Client authentication: a Web redirect makes a confidential client (signin.md §3.5)."""
        secret = form.get("client_secret") or (basic[1] if basic else "")
        assertion = form.get("client_assertion") or ""
        confidential = platform == "web" or (platform is None and not app.get("isFallbackPublicClient"))
        if not confidential:
            if secret or assertion:
                raise exc.public_client_with_secret()
            return
        if secret:
            verdict = self.directory.check_client_secret(app["appId"], secret)
            if verdict == "invalid":
                raise exc.invalid_secret(app["appId"])
            if verdict == "expired":
                raise exc.expired_secret(app["appId"])
        elif assertion and not authority.is_live:
            self.tokens.check_assertion(dict(app), assertion, self.tenants.work.tenant_id)
        else:
            raise exc.missing_secret()

    @staticmethod
    def _missing(authority: Authority, name: str) -> exc.TokenError:
        if authority.is_live:
            return exc.TokenError(400, "invalid_request", 0,
                                  f"The provided request must include a '{name}' input parameter.")
        return exc.invalid_request(f"The request body must contain the following parameter: '{name}'.")

    @staticmethod
    def _live_code_error(expired: bool) -> exc.TokenError:
        """Live's texts are the MSA ones without an AADSTS number (signin.md §4.3)."""
        return exc.TokenError(400, "invalid_grant", 0, exc.msa_code_invalid(expired).description)

    def _bad_code(self, authority: Authority, *, personal: bool, expired: bool) -> exc.TokenError:
        if authority.is_live:
            return self._live_code_error(expired)
        if personal:
            return exc.msa_code_invalid(expired)
        return exc.code_expired() if expired else exc.bad_refresh_token()  # 9002313: malformed

    @staticmethod
    def _bad_refresh(authority: Authority) -> exc.TokenError:
        if authority.is_live:
            return exc.TokenError(400, "invalid_grant", 0,
                                  "The provided value for the 'refresh_token' parameter is not valid.")
        return exc.bad_refresh_token()

    @staticmethod
    def _token_scopes(granted: list[str], asked: str | None) -> list[str]:
        """Without ``scope`` the token carries the authorize leg's scopes; with it, a subset of them."""
        if not asked or not asked.strip():
            return list(granted)
        have = {s.lower(): s for s in granted}
        wanted = asked.split()
        missing = [s for s in wanted if s.lower() not in have and s.lower() not in OIDC_SCOPES]
        if missing:
            raise exc.token_scope_invalid(" ".join(missing))
        return [have.get(s.lower(), s) for s in wanted]

    # ---------------------------------------------------------------- the answers

    def _tokens(self, authority: Authority, app: Mapping[str, Any], account: Account, scopes: list[str],
                platform: str, base: str, hard_expiry: float | None = None, *,
                nonce: str | None = None) -> dict[str, Any]:
        lowered = {s.lower() for s in scopes}
        refresh = None
        if lowered & OFFLINE_SCOPES:
            if platform == "spa" and hard_expiry is None:  # 24 hours, carried into its successors (§3.3)
                hard_expiry = time.time() + SPA_REFRESH_LIFETIME
            refresh = self._new_refresh_token(authority, app["appId"], account, scopes, platform, hard_expiry)
        if authority.is_live:
            answer: dict[str, Any] = {
                "token_type": "bearer", "expires_in": 3600, "scope": " ".join(scopes),
                "access_token": "EwB" + secrets.token_urlsafe(150),
            }
            if refresh:
                answer["refresh_token"] = refresh
            answer["user_id"] = account.live_user_id
            return answer
        resource_scopes = [s for s in scopes if s.lower() not in OIDC_SCOPES]
        audience = audience_for(resource_of(resource_scopes[0])[0]) if resource_scopes else GRAPH_URL
        same = [s for s in resource_scopes if audience_for(resource_of(s)[0]) == audience] or ["User.Read"]
        lifetime = 3600 if account.kind == "personal" else 3599
        if account.kind == "personal":
            access = "EwB" + secrets.token_urlsafe(150)
        else:
            scp = " ".join(resource_of(s)[1] for s in same)
            access = self.tokens.access_token(tid=account.tenant_id, oid=account.object_id, appid=app["appId"],
                                              idtyp="user", audience=audience or GRAPH_URL, scp=scp,
                                              upn=account.login, name=account.display_name)
        answer = {
            "token_type": "Bearer",
            "scope": " ".join(same + [s for s in scopes if s.lower() in OIDC_SCOPES]),
            "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": access,
        }
        if refresh:
            answer["refresh_token"] = refresh
        if "openid" in lowered:
            answer["id_token"] = self.tokens.id_token(app["appId"], account.tenant_id, account.object_id, account.login,
                                                      account.display_name, base, email="email" in lowered,
                                                      nonce=nonce)
        return answer

    def _new_refresh_token(self, authority: Authority, client_id: str, account: Account, scopes: list[str],
                           platform: str, hard_expiry: float | None) -> str:
        if account.kind == "personal":
            token = f"M.C5{secrets.randbelow(90) + 10}_BAY.0.U.-C" + secrets.token_urlsafe(160)
        else:
            token = "1.AQ" + secrets.token_urlsafe(160)
        moment = time.time()
        with self.directory.store.write() as data:
            data["refresh_tokens"][_digest(token)] = {
                "flow": "code", "family": authority.family, "client_id": client_id, "account": _account_record(account),
                "scopes": scopes, "platform": platform, "last_used": moment, "hard_expiry": hard_expiry,
                "issued": dt.datetime.fromtimestamp(moment, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f0Z"),
            }
            self.directory.store.mark_dirty()
        return token

    def age_refresh_tokens(self, seconds: float) -> None:
        """Test control: make every refresh token of this flow look ``seconds`` older."""
        with self.directory.store.write() as data:
            for entry in data["refresh_tokens"].values():
                if entry.get("flow") == "code":
                    entry["last_used"] = float(entry["last_used"]) - seconds
                    if entry.get("hard_expiry") is not None:
                        entry["hard_expiry"] = float(entry["hard_expiry"]) - seconds
            self.directory.store.mark_dirty()


def _serves(authority: Authority, account: Account, work_tenant_id: str) -> bool:
    if account.kind == "personal":
        return authority.personal
    return authority.work and (authority.kind != "tenant" or account.tenant_id == work_tenant_id)


def _account_record(account: Account) -> dict[str, str]:
    return {"login": account.login, "kind": account.kind, "tenant_id": account.tenant_id,
            "object_id": account.object_id, "display_name": account.display_name}


def _account_from(record: Mapping[str, str]) -> Account:
    return Account(record["login"], record["kind"], record["tenant_id"], record["object_id"],  # type: ignore[arg-type]
                   record["display_name"])
