"""The token endpoint's half of the authorization-code flow: codes and refresh tokens redeemed.

``grant_type=authorization_code`` and ``refresh_token`` for the codes :mod:`.authorize` issues, at the
v2 ``/{tenant}/oauth2/v2.0/token`` and login.live.com's ``/oauth20_token.srf``; the checks and every
error follow signin.md §3 and §4. Also the pieces both halves share: how a code is stored, which
redirect URI an app answers on, PKCE.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
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
GRAPH_URL = "https://graph.microsoft.com"
PERSONAL_AUDIENCES = frozenset(schema.PERSONAL_AUDIENCES)


class CodeGrant:
    """The two grants that redeem what the authorize endpoint issued."""

    def __init__(self, directory: Directory, tokens: TokenService, tenants: Tenants) -> None:
        self.directory = directory
        self.tokens = tokens
        self.tenants = tenants

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
            entry = data.setdefault("auth_codes", {}).get(digest(code))
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
            account = account_from(entry["account"])
            if entry["family"] != authority.family or not serves(authority, account, self.tenants.work.tenant_id):
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
            entry = data["refresh_tokens"].get(digest(token))
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
        account = account_from(entry["account"])
        if entry["family"] != authority.family or not serves(authority, account, self.tenants.work.tenant_id):
            raise self._bad_refresh(authority)
        with self.directory.store.write() as data:
            data["refresh_tokens"][digest(token)]["last_used"] = moment
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
            data["refresh_tokens"][digest(token)] = {
                "flow": "code", "family": authority.family, "client_id": client_id, "account": account_record(account),
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


def serves(authority: Authority, account: Account, work_tenant_id: str) -> bool:
    if account.kind == "personal":
        return authority.personal
    return authority.work and (authority.kind != "tenant" or account.tenant_id == work_tenant_id)


def account_record(account: Account) -> dict[str, str]:
    return {"login": account.login, "kind": account.kind, "tenant_id": account.tenant_id,
            "object_id": account.object_id, "display_name": account.display_name}


def account_from(record: Mapping[str, str]) -> Account:
    return Account(record["login"], record["kind"], record["tenant_id"], record["object_id"],  # type: ignore[arg-type]
                   record["display_name"])


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def pkce_matches(challenge: str, method: str, verifier: str | None) -> bool:
    """RFC 7636 §4.6: S256 is BASE64URL(SHA256(verifier)) without padding; anything else compares as plain
    (signin.md §2.1: both are accepted, and a challenge without a method is plain)."""
    if not verifier or not verifier.isascii():  # RFC 7636 §4.1: a verifier is ASCII; anything else is no match
        return False
    if method.upper() == "S256":
        hashed = hashlib.sha256(verifier.encode("ascii")).digest()
        return hmac.compare_digest(base64.urlsafe_b64encode(hashed).rstrip(b"="), challenge.encode())
    return hmac.compare_digest(verifier.encode(), challenge.encode())  # bytes: a challenge may be non-ASCII


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
