"""Sign-in: national clouds, custom endpoints, and azure-identity credentials.

azure-identity is imported only inside the functions that need it: `--help` and input
validation must not pay for it.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken, TokenCredential

AUTH_METHODS = (
    "auto",
    "azure-cli",
    "device-code",
    "browser",
    "environment",
    "workload-identity",
    "managed-identity",
)
# The Azure CLI's public client id: what azure-identity's DeviceCodeCredential and
# InteractiveBrowserCredential use by default; pre-authorised for Microsoft Graph.
AZURE_CLI_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"


@dataclass(frozen=True)
class Cloud:
    name: str
    authority_host: str
    graph_url: str
    graph_scope: str


CLOUDS: dict[str, Cloud] = {
    "public": Cloud(
        "public", "https://login.microsoftonline.com", "https://graph.microsoft.com/v1.0",
        "https://graph.microsoft.com/.default",
    ),
    "usgov": Cloud(
        "usgov", "https://login.microsoftonline.us", "https://graph.microsoft.us/v1.0",
        "https://graph.microsoft.us/.default",
    ),
    "china": Cloud(
        "china", "https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn/v1.0",
        "https://microsoftgraph.chinacloudapi.cn/.default",
    ),
}
# Hosts MSAL knows; any other authority needs instance discovery turned off, or MSAL asks
# login.microsoftonline.com to validate it (which fails for private endpoints and offline).
KNOWN_AUTHORITY_HOSTS = frozenset(
    {"login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn",
     "login-us.microsoftonline.com", "login.partner.microsoftonline.cn"}
)


class SignInError(Exception):
    """Sign-in failed; the message says why and what to do."""


@dataclass(frozen=True)
class Endpoints:
    cloud: str
    authority_host: str
    graph_url: str
    graph_scope: str
    ca_file: str | None = None

    @property
    def custom_authority(self) -> bool:
        return (urlsplit(self.authority_host).hostname or "") not in KNOWN_AUTHORITY_HOSTS


def resolve_endpoints(
    cloud: str, *, authority_host: str | None, graph_url: str | None, ca_file: str | None
) -> Endpoints:
    if cloud not in CLOUDS:
        raise ValueError(f"--cloud must be one of {', '.join(CLOUDS)}, not {cloud!r}.")
    base = CLOUDS[cloud]
    authority = (authority_host or base.authority_host).rstrip("/")
    if "://" not in authority:
        authority = "https://" + authority
    if not authority.startswith("https://"):
        raise ValueError(f"--authority-host {authority!r} must be an https:// URL.")
    graph = (graph_url or base.graph_url).rstrip("/")
    if not graph.startswith("https://"):
        raise ValueError(f"--graph-url {graph!r} must be an https:// URL.")
    if ca_file is not None and not os.path.isfile(ca_file):
        raise ValueError(f"--ca-file {ca_file!r} does not exist or is not a file.")
    return Endpoints(cloud, authority, graph, base.graph_scope, ca_file)


@dataclass(frozen=True)
class SignInSettings:
    method: str
    tenant: str | None
    endpoints: Endpoints
    interactive: bool  # a person at a terminal who can complete device-code sign-in
    prompt: Callable[[str], None] | None = None  # where the device-code message goes
    timeout: float | None = None  # seconds for one sign-in request (azure-core's default is 300)


def identity_kwargs(endpoints: Endpoints, timeout: float | None) -> dict[str, Any]:
    """azure-identity keywords for every credential of a run that talks to `endpoints`' authority."""
    kw: dict[str, Any] = {"authority": endpoints.authority_host,
                          "transport": run_transport(endpoints.ca_file, timeout)}
    if endpoints.custom_authority:
        kw["disable_instance_discovery"] = True
    return kw


def _common_kwargs(settings: SignInSettings) -> dict[str, Any]:
    return identity_kwargs(settings.endpoints, settings.timeout)


_DISCOVERY_PATHS = ("/.well-known/openid-configuration", "/common/discovery/instance")
_transports: dict[tuple[str | None, float | None], Any] = {}
_transports_lock = threading.Lock()


def run_transport(ca_file: str | None, timeout: float | None) -> Any:
    """The one HTTP transport the run's azure-identity credentials share (one per CA file and time-out).

    Each credential builds its own MSAL application, and each MSAL application reads the tenant's
    OpenID configuration before its first token: the sign-in and the check of a new secret would read
    the same document twice, a round trip on the critical path of every rotation. Sharing one
    transport keeps the connection to the sign-in host alive between them and answers a discovery
    document the run has already read from memory (MSAL's own `http_cache` does the same; azure-identity
    does not expose it). Only a successful GET of a discovery document is remembered: for this process,
    and, when it passes discovery.py's checks, in the operator's cache folder for the next runs.
    """
    key = (ca_file, timeout)
    with _transports_lock:
        transport = _transports.get(key)
        if transport is None:
            transport = _transports[key] = _new_transport(ca_file, timeout)
        return transport


def _new_transport(ca_file: str | None, timeout: float | None) -> Any:
    from azure.core.pipeline.transport import RequestsTransport

    from cypht_azure import trust  # ssl and the CA bundle: only for a command that signs in

    class RunTransport(RequestsTransport):  # type: ignore[misc]
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.documents: dict[str, Any] = {}
            self.documents_lock = threading.Lock()

        def send(self, request: Any, **kwargs: Any) -> Any:
            url = str(request.url)
            if request.method != "GET" or not urlsplit(url).path.rstrip("/").endswith(_DISCOVERY_PATHS):
                return super().send(request, **kwargs)
            with self.documents_lock:
                known = self.documents.get(url)
            if known is not None:
                return known
            kept = discovery.load(url)  # the operator's copy from an earlier run, if fresh and checked
            if kept is not None:
                response = _stored_response(request, url, kept)
            else:
                response = super().send(request, **kwargs)
                if response.status_code != 200:
                    return response
                discovery.store(url, response.body())
            with self.documents_lock:
                self.documents[url] = response
            return response

    from cypht_azure import discovery

    kw: dict[str, Any] = dict(trust.requests_verify(ca_file))  # the system store plus --ca-file
    if timeout:
        kw["connection_timeout"] = kw["read_timeout"] = timeout
    return RunTransport(**kw)


def _stored_response(request: Any, url: str, content: bytes) -> Any:
    """A 200 answer to `request` with a discovery document kept on disk (discovery.py)."""
    import requests
    from azure.core.pipeline.transport import RequestsTransportResponse

    raw = requests.Response()
    raw.status_code, raw.reason, raw.url, raw.encoding = 200, "OK", url, "utf-8"
    raw.headers["Content-Type"] = "application/json; charset=utf-8"
    raw._content = content
    return RequestsTransportResponse(request, raw)


def _environment_credential(settings: SignInSettings) -> TokenCredential | None:
    """Service principal from AZURE_CLIENT_ID + AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH.

    Built explicitly (rather than EnvironmentCredential) so that --tenant can override
    AZURE_TENANT_ID and the secret never has to be an option.
    """
    client_id = os.environ.get("AZURE_CLIENT_ID")
    tenant = settings.tenant or os.environ.get("AZURE_TENANT_ID")
    secret = os.environ.get("AZURE_CLIENT_SECRET")
    cert = os.environ.get("AZURE_CLIENT_CERTIFICATE_PATH")
    if not (client_id and tenant and (secret or cert)):
        return None
    from azure.identity import CertificateCredential, ClientSecretCredential

    if secret:
        return ClientSecretCredential(tenant, client_id, secret, **_common_kwargs(settings))
    return CertificateCredential(
        tenant, client_id, cert,
        password=os.environ.get("AZURE_CLIENT_CERTIFICATE_PASSWORD"), **_common_kwargs(settings),
    )


def _workload_identity_credential(settings: SignInSettings) -> TokenCredential | None:
    token_file = os.environ.get("AZURE_FEDERATED_TOKEN_FILE")
    client_id = os.environ.get("AZURE_CLIENT_ID")
    tenant = settings.tenant or os.environ.get("AZURE_TENANT_ID")
    if not (token_file and client_id and tenant):
        return None
    from azure.identity import WorkloadIdentityCredential

    kw = _common_kwargs(settings)
    kw.pop("disable_instance_discovery", None)  # not an MSAL credential: no discovery
    return WorkloadIdentityCredential(
        tenant_id=tenant, client_id=client_id, token_file_path=token_file, **kw
    )


def _managed_identity_credential(settings: SignInSettings) -> TokenCredential:
    from azure.identity import ManagedIdentityCredential

    # A private identity endpoint (or an emulator) may have its own CA: added to the system store.
    from cypht_azure import trust

    kw: dict[str, Any] = trust.requests_verify(settings.endpoints.ca_file)
    client_id = os.environ.get("AZURE_CLIENT_ID")
    return ManagedIdentityCredential(client_id=client_id, **kw) if client_id else ManagedIdentityCredential(**kw)


def _azure_cli_credential(settings: SignInSettings) -> TokenCredential:
    from azure.identity import AzureCliCredential

    return AzureCliCredential(tenant_id=settings.tenant) if settings.tenant else AzureCliCredential()


def start_azure_cli(cloud: str, tenant: str | None) -> None:
    """--auth azure-cli: start `az account get-access-token` for the cloud's Graph now, before the heavy
    imports; the credential reads its answer (azcli.py)."""
    from cypht_azure import azcli

    azcli.start_early(azcli.scopes_to_resource(CLOUDS[cloud].graph_scope), tenant)


def _public_client_id() -> str:
    """The public client that device-code and browser sign-in act as (another one for emulators)."""
    return os.environ.get("CYPHT_AZURE_DEVICE_CODE_CLIENT_ID", AZURE_CLI_CLIENT_ID)


def _device_code_credential(settings: SignInSettings) -> TokenCredential:
    from azure.identity import DeviceCodeCredential

    def prompt(verification_uri: str, user_code: str, expires_on: Any) -> None:
        message = f"To sign in, open {verification_uri} and enter the code {user_code}"
        (settings.prompt or (lambda m: print(m, file=sys.stderr)))(message)

    return DeviceCodeCredential(
        client_id=_public_client_id(),
        tenant_id=settings.tenant or "organizations",
        prompt_callback=prompt,
        **_common_kwargs(settings),
    )


def _browser_credential(settings: SignInSettings) -> TokenCredential:
    from azure.identity import InteractiveBrowserCredential

    return InteractiveBrowserCredential(
        client_id=_public_client_id(), tenant_id=settings.tenant or "organizations", **_common_kwargs(settings)
    )


# Renew this long before expiry, as azure-core's bearer-token policy does: a token handed out must
# outlive the request that carries it.
REFRESH_MARGIN = 300.0


class OneTokenPerRun:
    """Caches each access token in-process until shortly before it expires, for any credential.

    A run asks for the Graph token once at sign-in and again for every Graph request. MSAL-based
    credentials answer the later calls from memory, but AzureCliCredential starts a whole `az`
    process each time (its docstring says it does not cache), ManagedIdentityCredential and
    WorkloadIdentityCredential differ by version: one cache here makes every kind acquire once.
    The lock makes concurrent callers wait for the first acquisition instead of starting their own.
    """

    def __init__(self, inner: TokenCredential, *, margin: float = REFRESH_MARGIN) -> None:
        self.inner = inner
        self.margin = margin
        self.acquisitions = 0
        self._lock = threading.Lock()
        self._tokens: dict[tuple[Any, ...], tuple[AccessToken, float]] = {}  # key -> (token, renew at)

    def get_token(
        self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
        enable_cae: bool = False, **kwargs: Any,
    ) -> AccessToken:
        if claims:  # a claims challenge asks for a new token by definition
            return self.inner.get_token(*scopes, claims=claims, tenant_id=tenant_id, enable_cae=enable_cae, **kwargs)
        key = (scopes, tenant_id, enable_cae)
        with self._lock:
            cached = self._tokens.get(key)
            now = time.time()
            if cached is not None and now < cached[1]:
                return cached[0]
            token = self.inner.get_token(*scopes, tenant_id=tenant_id, enable_cae=enable_cae, **kwargs)
            self.acquisitions += 1
            # A short-lived token is kept for half its life rather than not at all.
            self._tokens[key] = (token, token.expires_on - min(self.margin, (token.expires_on - now) / 2))
            return token

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> OneTokenPerRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_credential(settings: SignInSettings) -> TokenCredential:
    return OneTokenPerRun(_build_credential(settings))


def _build_credential(settings: SignInSettings) -> TokenCredential:
    method = settings.method
    if method == "environment":
        cred = _environment_credential(settings)
        if cred is None:
            raise SignInError(
                "--auth environment needs AZURE_CLIENT_ID, AZURE_TENANT_ID (or --tenant) and "
                "AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH in the environment."
            )
        return cred
    if method == "workload-identity":
        cred = _workload_identity_credential(settings)
        if cred is None:
            raise SignInError(
                "--auth workload-identity needs AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID and "
                "AZURE_TENANT_ID (or --tenant) in the environment."
            )
        return cred
    if method == "managed-identity":
        return _managed_identity_credential(settings)
    if method == "azure-cli":
        from cypht_azure.azcli import AzureCliToken

        return AzureCliToken(tenant_id=settings.tenant)
    if method == "device-code":
        return _device_code_credential(settings)
    if method == "browser":
        return _browser_credential(settings)
    if method != "auto":
        raise SignInError(f"--auth must be one of {', '.join(AUTH_METHODS)}, not {method!r}.")
    return _auto_credential(settings)


def _auto_credential(settings: SignInSettings) -> TokenCredential:
    """Non-interactive sources first, in the order CI systems provide them; device code last, on a terminal."""
    chain: list[TokenCredential] = []
    for make in (_environment_credential, _workload_identity_credential):
        cred = make(settings)
        if cred is not None:
            chain.append(cred)
    if os.environ.get("IDENTITY_ENDPOINT") or os.environ.get("MSI_ENDPOINT"):
        chain.append(_managed_identity_credential(settings))
    if shutil.which("az"):
        chain.append(_azure_cli_credential(settings))
    if settings.interactive:
        chain.append(_device_code_credential(settings))
    if not chain:
        raise SignInError(
            "No way to sign in was found. Run `az login` first, set AZURE_CLIENT_ID, AZURE_TENANT_ID and "
            "AZURE_CLIENT_SECRET (a service principal), use --auth workload-identity in CI, or run on a "
            "terminal for device-code sign-in. To try cypht-azure without a tenant, add --sandbox."
        )
    if len(chain) == 1:
        return chain[0]
    from azure.identity import ChainedTokenCredential

    return ChainedTokenCredential(*chain)


# Entra error codes that users hit, with what to do about each.
_AADSTS_HINTS = {
    "AADSTS7000215": "the client secret is wrong (use the secret's value, not its ID) or was removed.",
    "AADSTS7000222": "the client secret has expired; create a new one.",
    "AADSTS700016": "the application (client) ID was not found in this tenant; check AZURE_CLIENT_ID and --tenant.",
    "AADSTS90002": "the tenant was not found; check --tenant (a GUID or a domain such as contoso.onmicrosoft.com).",
    "AADSTS900023": "the tenant is not a valid tenant ID or domain; check --tenant.",
    "AADSTS50020": "the account is a personal Microsoft account without a directory; sign in with a work or school account that can register apps.",
    "AADSTS65001": "consent is missing for the sign-in app; an administrator must consent.",
}


def explain_sign_in_failure(exc: BaseException) -> str:
    text = str(exc)
    for code, hint in _AADSTS_HINTS.items():
        if code in text:
            return f"Sign-in failed ({code}): {hint}"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return (
            "Sign-in failed: the sign-in endpoint's TLS certificate is not trusted. For a private or "
            "emulated endpoint pass its CA with --ca-file; cypht-azure never turns verification off."
        )
    return f"Sign-in failed: {first}"


def token_claims(token: str) -> dict[str, Any]:
    """Read (not verify) an access token's claims: the tenant and who signed in."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        claims = json.loads(base64.urlsafe_b64decode(payload))
        return claims if isinstance(claims, dict) else {}
    except (IndexError, ValueError):
        return {}


def acquire_token(credential: TokenCredential, scope: str) -> tuple[str, dict[str, Any]]:
    """One token for Graph, before any Graph call, so sign-in problems surface first."""
    from azure.core.exceptions import ClientAuthenticationError

    try:
        token = credential.get_token(scope).token
    except ClientAuthenticationError as exc:
        raise SignInError(explain_sign_in_failure(exc)) from None
    except ValueError as exc:
        raise SignInError(f"Sign-in failed: {exc}") from None
    return token, token_claims(token)
