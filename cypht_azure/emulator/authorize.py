"""The authorization-code flow: authorize-request checks, sign-in and consent, codes (redeemed in
:mod:`.codegrant`).

Both endpoint families Cypht can be pointed at: the v2 ``/{tenant}/oauth2/v2.0/{authorize,token}``
and login.live.com's ``/oauth20_{authorize,token}.srf``. The order of the checks and every error's
delivery follow signin.md §2.4-§2.8, §3 and §4; the emulator's sign-in page and ``--sign-in auto``
both end in :meth:`CodeFlow.sign_in`, so the two cannot disagree.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from . import exceptions as exc
from . import schema
from .codegrant import (
    CODE_LIFETIME,
    GRAPH_URL,
    OIDC_SCOPES,
    PERSONAL_AUDIENCES,
    REDEEMED_CODE_MEMORY,
    CodeGrant,
    account_record,
    digest,
    match_redirect_uri,
)
from .directory import ADMIN_DIRECTORY_ROLES
from .identity import audience_for, resource_of
from .models import Directory
from .tenants import Account, Authority, Tenants

if TYPE_CHECKING:
    from .identity import TokenService

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
_SCOPE_SYNTAX = re.compile(r"^[A-Za-z0-9._~:/\-]+$")
ENTRA_ONLY_AUDIENCES = frozenset({"AzureADMyOrg", "AzureADMultipleOrgs"})
RESPONSE_MODES = ("query", "fragment", "form_post")


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


class CodeFlow:
    """Authorize checks, sign-in, consent and codes; `grant` redeems them at the token endpoint."""

    def __init__(self, directory: Directory, tokens: TokenService) -> None:
        self.directory = directory
        self.tokens = tokens
        self.tenants = Tenants(directory)
        self.grant = CodeGrant(directory, tokens, self.tenants)

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
            if self.tokens.beyond_loopback and self._administers(found):
                # No password is asked here: beyond loopback anyone could sign in as an administrator.
                raise exc.LoginRefusal(exc.ADMIN_NOT_BEYOND_LOOPBACK)
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

    def _administers(self, account: Account) -> bool:
        user = self.directory.user_by_key(account.login) or {}
        return bool(set(user.get("_roles") or ()) & ADMIN_DIRECTORY_ROLES)

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
            "scopes": req.scopes, "family": req.authority.family, "account": account_record(account),
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
            codes[digest(code)] = entry
            self.directory.store.mark_dirty()
        params = {"code": code}
        if req.state is not None:
            params["state"] = req.state
        if not live:
            params["session_state"] = str(uuid.uuid4())
        return params
