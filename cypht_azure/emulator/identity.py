"""The identity-platform side: discovery documents, the token and devicecode endpoints,
and validation of the bearer tokens Graph receives.

Access tokens are JWTs signed HS256 with the per-state key (state.json), so any
process serving the same state dir accepts them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import string
import time
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from . import exceptions as exc
from . import schema
from .applications import load_certificate
from .directory import FIRST_PARTY_PUBLIC_CLIENTS, Caller
from .models import Directory

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
ACCESS_TOKEN_LIFETIME = 3599
# What `.default` yields for a delegated Graph token in this tenant (authorization is by directory role).
DEFAULT_DELEGATED_GRAPH_SCOPES = (
    "Application.ReadWrite.All", "DelegatedPermissionGrant.ReadWrite.All", "Directory.AccessAsUser.All", "User.Read",
)
OUTLOOK_RESOURCES = ("https://outlook.office.com", "https://outlook.office365.com")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_jwt(claims: Mapping[str, Any], key: bytes) -> str:
    header = b64url(json.dumps({"typ": "JWT", "alg": "HS256", "kid": "emulator"}, separators=(",", ":")).encode())
    payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode()
    return f"{header}.{payload}.{b64url(hmac.new(key, signing_input, hashlib.sha256).digest())}"


def decode_jwt_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """(header, payload, signing input, signature) — raises ValueError on malformed input."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not a JWS compact token")
    try:
        header = json.loads(b64url_decode(parts[0]))
        payload = json.loads(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except (binascii.Error, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError("bad JWT encoding") from error
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise ValueError("bad JWT structure")
    return header, payload, f"{parts[0]}.{parts[1]}".encode(), signature


def resource_of(scope: str) -> tuple[str, str]:
    """``https://graph.microsoft.com/User.Read`` -> (resource, permission); bare names are Graph's."""
    if scope.endswith("/.default"):
        return scope[: -len("/.default")].rstrip("/"), ".default"
    if "://" in scope:
        resource, _, perm = scope.rpartition("/")
        return resource.rstrip("/"), perm
    if scope.startswith(schema.GRAPH_APP_ID + "/"):
        return schema.GRAPH_APP_ID, scope.split("/", 1)[1]
    return "https://graph.microsoft.com", scope


def audience_for(resource: str, base: str = "") -> str | None:
    low = resource.lower().rstrip("/")
    # The emulator's own URL stands for Microsoft Graph: the Azure CLI asks for a token for the
    # resource it also uses as Graph's base URL (its cloud's microsoft_graph_resource_id).
    if low in schema.GRAPH_RESOURCES or (base and low == base.lower().rstrip("/")):
        return "https://graph.microsoft.com"
    if low in schema.ARM_RESOURCES:
        return "https://management.core.windows.net/"
    if low in OUTLOOK_RESOURCES:
        return low
    return None


class TokenService:
    def __init__(self, directory: Directory) -> None:
        from .authorize import CodeFlow  # it mints its tokens here: a cycle only at import time

        self.directory = directory
        # Bound beyond loopback (--bind), no token path hands out admin rights without the admin's
        # credential: see :mod:`.admin` for the rules; the emulator sets this when it starts.
        self.beyond_loopback = False
        self.code_flow = CodeFlow(directory, self)

    @property
    def identity_header(self) -> str:
        """The managed identity endpoint's ``X-IDENTITY-HEADER`` secret (App Service's IDENTITY_HEADER),
        derived from the state's signing key so that every process serving the state agrees on it."""
        return hmac.new(self.directory.signing_key, b"managed-identity-header", hashlib.sha256).hexdigest()[:40]

    # ------------------------------------------------------------ discovery

    def resolve_tenant(self, tenant: str) -> str:
        d = self.directory
        if tenant.lower() in (d.tenant_id, d.domain.lower(), "common", "organizations"):
            return d.tenant_id
        raise exc.tenant_not_found(tenant)

    def openid_configuration(self, tenant: str, base: str) -> dict[str, Any]:
        tid = self.resolve_tenant(tenant)
        root = f"{base}/{tid}"
        return {
            "token_endpoint": f"{root}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{root}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{root}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name",
                                 "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr",
                                 "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
            "kerberos_endpoint": f"{root}/kerberos",
            "tenant_region_scope": "WW",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }

    def instance_discovery(self, base: str, host: str) -> dict[str, Any]:
        return {
            "tenant_discovery_endpoint": f"{base}/{self.directory.tenant_id}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
        }

    # ------------------------------------------------------------ token endpoint

    def token(self, tenant: str, form: Mapping[str, str], base: str, basic: tuple[str, str] | None) -> dict[str, Any]:
        grant = form.get("grant_type", "")
        if grant == "authorization_code" or (grant == "refresh_token" and self._code_flow_refresh(form, basic)):
            authority = self.code_flow.grant.token_authority(tenant)
            if grant == "authorization_code":
                return self.code_flow.grant.redeem(authority, form, basic, base)
            return self.code_flow.grant.refresh(authority, form, basic, base)
        try:
            tid = self.resolve_tenant(tenant)
        except exc.TokenError as error:  # the token endpoint says invalid_request (signin.md §1)
            raise exc.invalid_request(error.description, error.aadsts) from None
        if grant == "client_credentials":
            return self._client_credentials(tid, form, basic, base)
        if grant == DEVICE_CODE_GRANT:
            return self._device_code_grant(tid, form, base)
        if grant == "refresh_token":
            return self._refresh_grant(tid, form, base)
        if not grant:
            raise exc.invalid_request("The request body must contain the following parameter: 'grant_type'.")
        raise exc.unsupported_grant(grant)

    def live_token(self, form: Mapping[str, str], base: str, basic: tuple[str, str] | None) -> dict[str, Any]:
        """login.live.com's oauth20_token.srf: the two grants of the authorization-code flow."""
        grant = form.get("grant_type", "")
        live = self.code_flow.tenants.live()
        if grant == "authorization_code":
            return self.code_flow.grant.redeem(live, form, basic, base)
        if grant == "refresh_token":
            return self.code_flow.grant.refresh(live, form, basic, base)
        if not grant:
            raise exc.TokenError(400, "invalid_request", 0,
                                 "The provided request must include a 'grant_type' input parameter.")
        raise exc.TokenError(400, "unsupported_grant_type", 0,
                             "The provided value for the input parameter 'grant_type' is not valid.")

    def _code_flow_refresh(self, form: Mapping[str, str], basic: tuple[str, str] | None) -> bool:
        """A refresh token of the authorization-code flow, or one sent with client credentials."""
        with self.directory.store.read() as data:
            entry = data["refresh_tokens"].get(_digest(form.get("refresh_token", "")))
        if entry is not None:
            return bool(entry.get("flow") == "code")
        return bool(form.get("client_secret") or form.get("client_assertion") or basic)

    def _client_credentials(
        self, tid: str, form: Mapping[str, str], basic: tuple[str, str] | None, base: str = ""
    ) -> dict[str, Any]:
        client_id = form.get("client_id") or (basic[0] if basic else "")
        if not client_id:
            raise exc.invalid_request("The request body must contain the following parameter: 'client_id'.")
        scope = form.get("scope", "").strip()
        if not scope:
            raise exc.invalid_request("The request body must contain the following parameter: 'scope'.")
        scopes = scope.split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            raise exc.TokenError(
                400, "invalid_scope", 1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows must have a scope "
                "value with /.default suffixed to the resource identifier (application ID URI).",
            )
        resource = scopes[0][: -len("/.default")]
        audience = audience_for(resource, base)
        if audience is None:
            raise exc.resource_not_found(resource, tid)
        app = self.directory.app_by_app_id(client_id)
        if app is None:
            raise exc.app_not_found(client_id, tid)
        secret = form.get("client_secret") or (basic[1] if basic else None)
        assertion = form.get("client_assertion")
        if secret:
            verdict = self.directory.check_client_secret(client_id, secret)
            if verdict == "invalid":
                raise exc.invalid_secret(client_id)
            if verdict == "expired":
                raise exc.expired_secret(client_id)
        elif assertion:
            if form.get("client_assertion_type") != JWT_BEARER:
                raise exc.invalid_request(
                    "The request body must contain the following parameter: 'client_assertion_type'.")
            self.check_assertion(app, assertion, tid)
        else:
            raise exc.missing_credential()
        caller = self.directory.caller_for_app(client_id)
        if not caller.object_id:
            raise exc.missing_service_principal(client_id, tid)
        roles = sorted(caller.roles) if audience == "https://graph.microsoft.com" else []
        token = self.access_token(
            tid=tid, oid=caller.object_id, appid=client_id, idtyp="app", audience=audience,
            roles=roles, app_displayname=app.get("displayName"),
        )
        return {"token_type": "Bearer", "expires_in": ACCESS_TOKEN_LIFETIME,
                "ext_expires_in": ACCESS_TOKEN_LIFETIME, "access_token": token}

    def managed_identity(self, query: Mapping[str, str], identity_header: str | None) -> dict[str, Any]:
        """App Service's managed identity endpoint (IDENTITY_ENDPOINT, api-version 2019-08-01): a token for
        the user-assigned identity ``client_id`` names, an app identity of this directory; no secret."""
        tid = self.directory.tenant_id
        if not identity_header:
            raise exc.TokenError(400, "invalid_request", 0, "The X-IDENTITY-HEADER header is missing.")
        if self.beyond_loopback and not hmac.compare_digest(identity_header.encode(), self.identity_header.encode()):
            raise exc.TokenError(
                401, "unauthorized_client", 0,
                "The X-IDENTITY-HEADER header is not this emulator's. It listens beyond loopback: give the "
                "identity_header of emulator.json (App Service's IDENTITY_HEADER).")
        resource = query.get("resource", "")
        audience = audience_for(resource)
        if audience is None:
            raise exc.resource_not_found(resource, tid)
        client_id = query.get("client_id", "")
        caller = self.directory.caller_for_app(client_id) if client_id else None
        if caller is None or not caller.object_id:
            raise exc.TokenError(400, "invalid_request", 0,
                                 f"No managed identity with client_id {client_id!r} is assigned to this resource.")
        roles = sorted(caller.roles) if audience == "https://graph.microsoft.com" else []
        token = self.access_token(tid=tid, oid=caller.object_id, appid=client_id, idtyp="app", audience=audience,
                                  roles=roles)
        return {"access_token": token, "expires_on": str(int(time.time()) + ACCESS_TOKEN_LIFETIME),
                "resource": resource, "token_type": "Bearer", "client_id": client_id}

    # -- client assertions -------------------------------------------------

    def check_assertion(self, app: dict[str, Any], assertion: str, tid: str) -> None:
        try:
            header, payload, signing_input, signature = decode_jwt_unverified(assertion)
        except ValueError as error:
            raise exc.bad_assertion(50027, "JWT token is invalid or malformed.") from error
        now = time.time()
        exp, nbf = payload.get("exp"), payload.get("nbf", payload.get("iat", 0))
        if not isinstance(exp, (int, float)) or exp < now - 300 or (isinstance(nbf, (int, float)) and nbf > now + 300):
            raise exc.bad_assertion(700024, "Client assertion is not within its valid time range.")
        issuer = payload.get("iss")
        if issuer == app["appId"] and payload.get("sub") == app["appId"]:
            self._check_certificate_assertion(app, header, payload, signing_input, signature)
            return
        self._check_federated_assertion(app, payload)

    def _check_certificate_assertion(
        self, app: dict[str, Any], header: dict[str, Any], payload: dict[str, Any], signing_input: bytes,
        signature: bytes,
    ) -> None:
        aud = payload.get("aud")
        if not isinstance(aud, str) or not aud.rstrip("/").endswith("/token"):
            raise exc.bad_assertion(700021, "Client assertion audience claim does not match Realm issuer.")
        x5t, x5t256 = _thumb(header.get("x5t")), _thumb(header.get("x5t#S256"))
        for cred in app.get("keyCredentials") or []:
            if not cred.get("_key"):
                continue
            cert = load_certificate(cred["_key"])
            if (x5t and b64url(cert.fingerprint(hashes.SHA1())) == x5t) or (  # x5t is SHA-1 by spec
                x5t256 and b64url(cert.fingerprint(hashes.SHA256())) == x5t256
            ):
                if schema.parse_time(cred["endDateTime"]).timestamp() < time.time():
                    raise exc.bad_assertion(700027, "Client assertion contains an expired certificate.")
                if not _verify_signature(cert, str(header.get("alg")), signing_input, signature):
                    raise exc.bad_assertion(700027, "Client assertion failed signature validation.")
                return
        raise exc.bad_assertion(
            700027,
            "The certificate with identifier used to sign the client assertion is not registered on "
            f"application. [Reason - The key was not found., Thumbprint of key used by client: '{x5t or x5t256}']",
        )

    def _check_federated_assertion(self, app: dict[str, Any], payload: dict[str, Any]) -> None:
        if self.beyond_loopback:
            # The issuer's signature is never checked (its keys are not fetched): anyone who knows a
            # federated credential's issuer and subject could make such an assertion.
            raise exc.bad_assertion(
                50013, "Assertion failed signature validation. [Reason - This emulator listens beyond loopback "
                "and does not fetch the issuer's keys: federated credentials are honoured only when it is "
                "bound to loopback.]")
        issuer, subject, aud = payload.get("iss"), payload.get("sub"), payload.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        for fic in app.get("_fics") or []:
            if fic["issuer"] == issuer and fic["subject"] == subject and fic["audiences"][0] in audiences:
                return
        raise exc.TokenError(
            400, "invalid_request", 70021,
            "No matching federated identity record found for presented assertion. Assertion Issuer: "
            f"'{issuer}'. Assertion Subject: '{subject}'. Assertion Audience: '{','.join(map(str, audiences))}'.",
        )

    # -- device code -------------------------------------------------------

    def _public_client(self, client_id: str, tid: str) -> dict[str, Any]:
        if client_id.lower() in FIRST_PARTY_PUBLIC_CLIENTS:
            return {"appId": client_id.lower(), "displayName": FIRST_PARTY_PUBLIC_CLIENTS[client_id.lower()],
                    "isFallbackPublicClient": True}
        app = self.directory.app_by_app_id(client_id)
        if app is None:
            raise exc.app_not_found(client_id, tid)
        return app

    def device_code(self, tenant: str, form: Mapping[str, str], base: str) -> dict[str, Any]:
        tid = self.resolve_tenant(tenant)
        client_id = form.get("client_id", "")
        if not client_id:
            raise exc.invalid_request("The request body must contain the following parameter: 'client_id'.")
        if not form.get("scope", "").strip():
            raise exc.invalid_request("The request body must contain the following parameter: 'scope'.")
        self._public_client(client_id, tid)
        device_code = "DAQABAAEAAA" + secrets.token_urlsafe(48)
        user_code = "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(9))
        store = self.directory.store
        with store.write() as data:
            flow = data["device_flow"]
            moment = time.time()
            data["device_codes"] = {k: v for k, v in data["device_codes"].items() if v["expires"] > moment}
            data["device_codes"][_digest(device_code)] = {
                "client_id": client_id, "scope": form["scope"], "approve_at": moment + float(flow["delay"]),
                "expires": moment + 900, "approver": flow["approver"], "decline": bool(flow["decline"]),
                # Beyond loopback nobody signs in by waiting: the admin approves this user code.
                "user_code": _digest(user_code), "approved": not self.beyond_loopback,
            }
            store.mark_dirty()
            interval = int(data["options"].get("device_code_interval", 5))
        message = ("To sign in, use a web browser to open the page https://microsoft.com/devicelogin and "
                   f"enter the code {user_code} to authenticate.")
        if self.beyond_loopback:
            message += (f" (This emulator listens beyond loopback: its admin approves the code with "
                        f"POST {base}/_emulator/devicelogin {{\"user_code\": \"{user_code}\"}}.)")
        return {
            "user_code": user_code,
            "device_code": device_code,
            "verification_uri": "https://microsoft.com/devicelogin",
            "expires_in": 900,
            "interval": interval,
            "message": message,
        }

    def approve_device_code(self, user_code: str) -> bool:
        """The admin's approval of a pending device-code sign-in (beyond loopback); False: no such code."""
        wanted = _digest(user_code.strip().upper())
        store = self.directory.store
        with store.write() as data:
            for entry in data["device_codes"].values():
                if entry.get("user_code") == wanted and entry["expires"] > time.time():
                    entry["approved"] = True
                    store.mark_dirty()
                    return True
        return False

    def _device_code_grant(self, tid: str, form: Mapping[str, str], base: str) -> dict[str, Any]:
        code = form.get("device_code", "")
        store = self.directory.store
        with store.write() as data:
            entry = data["device_codes"].get(_digest(code))
            if entry is None or entry["client_id"].lower() != form.get("client_id", "").lower():
                raise exc.bad_device_code()
            moment = time.time()
            if moment > entry["expires"]:
                raise exc.expired_device_code()
            if moment < entry["approve_at"] or not entry.get("approved", True):
                raise exc.authorization_pending()
            if entry["decline"]:
                raise exc.authorization_declined()
            app = self._public_client(entry["client_id"], tid)
            if not app.get("isFallbackPublicClient"):
                raise exc.public_client_required()
            del data["device_codes"][_digest(code)]
            store.mark_dirty()
            return self._user_tokens(tid, entry["client_id"], entry["approver"], entry["scope"], base,
                                     form.get("client_info") == "1")

    def _refresh_grant(self, tid: str, form: Mapping[str, str], base: str) -> dict[str, Any]:
        with self.directory.store.read() as data:
            entry = data["refresh_tokens"].get(_digest(form.get("refresh_token", "")))
        if entry is None or entry["client_id"].lower() != form.get("client_id", "").lower():
            raise exc.bad_refresh_token()
        scope = form.get("scope") or entry["scope"]
        return self._user_tokens(tid, entry["client_id"], entry["upn"], scope, base, form.get("client_info") == "1")

    def _user_tokens(
        self, tid: str, client_id: str, upn: str, scope: str, base: str, want_client_info: bool
    ) -> dict[str, Any]:
        user = self.directory.user_by_key(upn)
        if user is None:
            raise exc.TokenError(400, "invalid_grant", 50034, f"The user account {upn} does not exist in the directory.")
        requested = scope.split()
        resource_scopes = [s for s in requested if s not in OIDC_SCOPES]
        audience, granted = "https://graph.microsoft.com", ["User.Read"]
        if resource_scopes:
            resource, _ = resource_of(resource_scopes[0])
            maybe = audience_for(resource, base)
            if maybe is None:
                raise exc.resource_not_found(resource, tid)
            audience = maybe
            perms = [resource_of(s)[1] for s in resource_scopes if audience_for(resource_of(s)[0], base) == audience]
            granted = list(DEFAULT_DELEGATED_GRAPH_SCOPES) if ".default" in perms and audience == (
                "https://graph.microsoft.com") else [p for p in perms if p != ".default"]
        access = self.access_token(tid=tid, oid=user["id"], appid=client_id, idtyp="user", audience=audience,
                                   scp=" ".join(granted), upn=user["userPrincipalName"], name=user["displayName"])
        prefix = "" if audience == "https://graph.microsoft.com" and not any("://" in s for s in resource_scopes) \
            else audience.rstrip("/") + "/"
        answer: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join([prefix + g for g in granted] + [s for s in requested if s in OIDC_SCOPES]),
            "expires_in": ACCESS_TOKEN_LIFETIME,
            "ext_expires_in": ACCESS_TOKEN_LIFETIME,
            "access_token": access,
        }
        if "openid" in requested:
            answer["id_token"] = self.id_token(client_id, tid, user["id"], user["userPrincipalName"],
                                               user["displayName"], base)
        if "offline_access" in requested:
            refresh = "1.AQAA" + secrets.token_urlsafe(64)
            with self.directory.store.write() as data:
                data["refresh_tokens"][_digest(refresh)] = {"client_id": client_id, "upn": user["userPrincipalName"],
                                                           "scope": scope}
                self.directory.store.mark_dirty()
            answer["refresh_token"] = refresh
        if want_client_info:
            answer["client_info"] = b64url(json.dumps({"uid": user["id"], "utid": tid}).encode())
        return answer

    # ------------------------------------------------------------ tokens

    def id_token(self, client_id: str, tid: str, oid: str, login: str, name: str, base: str, *,
                 email: bool = False, nonce: str | None = None) -> str:
        moment = int(time.time())
        claims: dict[str, Any] = {
            "aud": client_id, "iss": f"{base}/{tid}/v2.0", "iat": moment, "nbf": moment, "exp": moment + 3600,
            "name": name, "oid": oid, "preferred_username": login,
            "sub": b64url(hashlib.sha256((oid + client_id).encode()).digest()[:24]), "tid": tid, "ver": "2.0",
        }
        if email:
            claims["email"] = login
        if nonce:
            claims["nonce"] = nonce
        return sign_jwt(claims, self.directory.signing_key)

    def access_token(
        self, *, tid: str, oid: str, appid: str, idtyp: str, audience: str = "https://graph.microsoft.com",
        roles: list[str] | None = None, scp: str | None = None, lifetime: int = ACCESS_TOKEN_LIFETIME,
        **extra: Any,
    ) -> str:
        moment = int(time.time())
        claims: dict[str, Any] = {
            "aud": audience, "iss": f"https://sts.windows.net/{tid}/", "iat": moment, "nbf": moment,
            "exp": moment + lifetime, "appid": appid, "appidacr": "1" if idtyp == "app" else "0",
            "idtyp": idtyp, "oid": oid, "sub": oid, "tid": tid, "uti": secrets.token_urlsafe(16), "ver": "1.0",
        }
        if roles:
            claims["roles"] = roles
        if scp:
            claims["scp"] = scp
        claims.update({k: v for k, v in extra.items() if v is not None})
        return sign_jwt(claims, self.directory.signing_key)

    def validate_bearer(self, authorization: str | None, audiences: tuple[str, ...]) -> Caller:
        """The caller behind an ``Authorization: Bearer`` header, or InvalidAuthenticationToken."""
        if not authorization or not authorization.lower().startswith("bearer ") or not authorization[7:].strip():
            raise exc.InvalidAuthenticationToken("Access token is empty.")
        token = authorization[7:].strip()
        if "." not in token:
            raise exc.InvalidAuthenticationToken("IDX14100: JWT is not well formed, there are no dots (.).")
        try:
            header, claims, signing_input, signature = decode_jwt_unverified(token)
        except ValueError as error:
            raise exc.InvalidAuthenticationToken() from error
        expected = hmac.new(self.directory.signing_key, signing_input, hashlib.sha256).digest()
        if header.get("alg") != "HS256" or not hmac.compare_digest(expected, signature):
            raise exc.InvalidAuthenticationToken("Access token validation failure.")
        if claims.get("tid") != self.directory.tenant_id:
            raise exc.InvalidAuthenticationToken("Access token validation failure. Invalid audience.")
        if str(claims.get("aud", "")).rstrip("/") not in {a.rstrip("/") for a in audiences}:
            raise exc.InvalidAuthenticationToken("Access token validation failure. Invalid audience.")
        if float(claims.get("exp", 0)) < time.time():
            raise exc.InvalidAuthenticationToken("Lifetime validation failed, the token is expired.")
        if claims.get("idtyp") == "user":
            return Caller("user", str(claims.get("oid")), claims.get("appid"),
                          scopes=frozenset(str(claims.get("scp", "")).split()))
        return Caller("app", str(claims.get("oid")), claims.get("appid"), roles=frozenset(claims.get("roles") or []))


def _thumb(value: object) -> str | None:
    """Thumbprints arrive as base64url with or without padding (MSAL pads); compare them unpadded."""
    if not isinstance(value, str) or not value:
        return None
    return value.rstrip("=").replace("+", "-").replace("/", "_")


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _verify_signature(cert: x509.Certificate, alg: str, signing_input: bytes, signature: bytes) -> bool:
    key = cert.public_key()
    digest = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}.get(alg[-3:])
    if digest is None:
        return False
    try:
        if isinstance(key, rsa.RSAPublicKey) and alg.startswith("RS"):
            key.verify(signature, signing_input, padding.PKCS1v15(), digest)
        elif isinstance(key, rsa.RSAPublicKey) and alg.startswith("PS"):
            key.verify(signature, signing_input, padding.PSS(padding.MGF1(digest), digest.digest_size), digest)
        elif isinstance(key, ec.EllipticCurvePublicKey) and alg.startswith("ES"):
            half = len(signature) // 2
            der = encode_dss_signature(int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big"))
            key.verify(der, signing_input, ec.ECDSA(digest))
        else:
            return False
    except InvalidSignature:
        return False
    return True
