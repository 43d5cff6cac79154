"""Signing in and talking to Graph, shared by every command; Graph errors become our errors here."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from cypht_azure import auth, cypht
from cypht_azure.errors import (
    ROLE_HINT,
    SERVICE_PRINCIPAL_HINT,
    AppNotFound,
    OperationFailed,
    PermissionDenied,
    SignInFailed,
)
from cypht_azure.graph import Graph, GraphError, GraphUnavailable, RetryPolicy
from cypht_azure.secret import Secret

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

log = logging.getLogger("cypht_azure.session")


class Progress(Protocol):
    def step(self, message: str) -> None: ...
    def waiting(self, message: str, seconds: float) -> None: ...


class NoProgress:
    def step(self, message: str) -> None:
        pass

    def waiting(self, message: str, seconds: float) -> None:
        pass


@dataclass
class Connection:
    """How to reach Entra and Graph: everything a command needs besides its own inputs."""

    signin: auth.SignInSettings
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    sandbox: bool = False
    # For --sandbox: the emulator's own administrator (not a real secret).
    client_id: str | None = None
    client_secret: Secret | None = None
    sandbox_lasting: bool = False  # --sandbox talks to a `cypht-azure emulator` that outlives the command


@dataclass
class Session:
    graph: Graph
    tenant_id: str
    signed_in_as: str
    connection: Connection
    progress: Progress

    @property
    def endpoints(self) -> auth.Endpoints:
        return self.connection.signin.endpoints

    def cypht_endpoints(self, app: dict[str, Any]) -> cypht.SignInEndpoints:
        """The endpoint keys Cypht needs for this app in this cloud and tenant (the cloud's public
        sign-in host, also in the sandbox: `.env` is written as it would be for real)."""
        host = urlsplit(auth.CLOUDS[self.endpoints.cloud].authority_host).hostname or ""
        return cypht.SignInEndpoints(str(app.get("signInAudience")), host, self.tenant_id,
                                     str(app.get("appId") or ""), str(app.get("publisherDomain") or ""))


def _credential(conn: Connection) -> TokenCredential:
    if conn.client_id and conn.client_secret:
        from azure.identity import ClientSecretCredential

        kw = auth.identity_kwargs(conn.signin.endpoints, conn.timeout)
        assert conn.signin.tenant
        return ClientSecretCredential(conn.signin.tenant, conn.client_id, conn.client_secret.reveal(), **kw)
    return auth.build_credential(conn.signin)


class _SignIn(threading.Thread):
    """Sign-in in the background: its round trips wait on the network (releasing the GIL) while the
    main thread loads the Graph client stack, so against real Entra their latency is hidden.

    Imports hold the GIL, so two threads importing at once each go at half speed, and sign-in would
    reach the network only when both stacks were loaded. The main thread therefore waits for
    `credential_ready` (azure-identity loaded, credential built) before it loads its own stack."""

    def __init__(self, conn: Connection, progress: Progress) -> None:
        super().__init__(name="sign-in", daemon=True)  # daemon: Ctrl-C during device code must not hang
        self.conn, self.progress = conn, progress
        self.credential: TokenCredential | None = None
        self.claims: dict[str, Any] = {}
        self.error: BaseException | None = None
        self.finished = 0.0
        self.credential_ready = threading.Event()

    def run(self) -> None:
        try:
            self.credential = _credential(self.conn)
            self.credential_ready.set()
            self.progress.step("Signing in")
            _, self.claims = auth.acquire_token(self.credential, self.conn.signin.endpoints.graph_scope)
        except auth.SignInError as exc:
            self.error = SignInFailed(str(exc))
        except BaseException as exc:  # handed to the main thread, raised there
            self.error = exc
        finally:
            self.finished = time.monotonic()
            self.credential_ready.set()

    def result(self) -> tuple[TokenCredential, dict[str, Any]]:
        self.join()
        if self.error is not None:
            raise self.error
        assert self.credential is not None
        return self.credential, self.claims


@asynccontextmanager
async def open_session(conn: Connection, progress: Progress) -> AsyncIterator[Session]:
    import azure.core.credentials  # noqa: F401  both stacks need it: load it once, before they diverge

    scope = conn.signin.endpoints.graph_scope
    signing_in = _SignIn(conn, progress)
    signing_in.start()
    signing_in.credential_ready.wait()
    holder: list[TokenCredential] = []

    def get_token() -> str:
        # The sign-in thread's token, from auth.OneTokenPerRun's cache: azure-identity's own caching
        # differs by credential (AzureCliCredential has none: one `az` process per call).
        try:
            return holder[0].get_token(scope).token
        except Exception as exc:
            raise SignInFailed(auth.explain_sign_in_failure(exc)) from None

    graph = Graph(
        graph_url=conn.signin.endpoints.graph_url, get_token=get_token, ca_file=conn.signin.endpoints.ca_file,
        timeout=conn.timeout, policy=conn.retry, on_wait=progress.waiting,
    )
    ready = time.monotonic()
    try:
        credential, claims = signing_in.result()
    except BaseException:
        await graph.close()
        raise
    # Whether sign-in (discovery + token request) sat on the critical path: the benchmark reads this.
    if signing_in.finished > ready:
        log.info("Graph client ready; waited %.0f ms for sign-in", (signing_in.finished - ready) * 1000)
    else:
        log.info("Graph client ready; signed in %.0f ms earlier", (ready - signing_in.finished) * 1000)
    holder.append(credential)
    tenant = str(claims.get("tid") or conn.signin.tenant or "")
    progress.step(f"Working in Microsoft Graph (tenant {tenant})")  # the sign-in step is over
    who = str(claims.get("upn") or claims.get("preferred_username") or claims.get("appid") or claims.get("azp") or "")
    try:
        yield Session(graph, tenant, who, conn, progress)
    except GraphError as exc:
        raise translate_graph_error(exc) from None
    except GraphUnavailable as exc:
        raise OperationFailed(str(exc)) from None
    finally:
        await graph.close()


def translate_graph_error(exc: GraphError) -> Exception:
    """Graph's error codes -> what the admin should do. Messages name the portal's terms."""
    if exc.status == 403 and exc.code == "Authorization_RequestDenied":
        return PermissionDenied(f"Microsoft Graph refused to {exc.path}: insufficient privileges.", hint=ROLE_HINT)
    if exc.status == 401:
        return SignInFailed(f"Microsoft Graph did not accept the sign-in token ({exc.message}).",
                            hint="Check --cloud / --graph-url match the sign-in endpoint, then sign in again.")
    if exc.code == "Directory_QuotaExceeded":
        return OperationFailed(
            "The directory object quota for the signed-in account is used up (Directory_QuotaExceeded).",
            hint="Permanently delete unused app registrations (Entra admin center > App registrations > Deleted "
                 "applications), or sign in as an administrator, whose app registrations are not capped.",
        )
    if exc.code == "CredentialInvalidLifetimeAsPerAppPolicy":
        return OperationFailed(
            f"The tenant's app management policy refuses a client secret that long ({exc.message}).",
            hint="Use a shorter --secret-lifetime (for example 180d or 90d); ask an administrator for the "
                 "policy's maximum (Entra admin center > Enterprise applications > App management policies).",
        )
    if exc.status == 404:
        return AppNotFound(f"{exc.path}: not found ({exc.code}).")
    return OperationFailed(f"Microsoft Graph refused to {exc.path}: {exc.status} {exc.code}: {exc.message}"
                           + (f" (request-id {exc.request_id})" if exc.request_id else ""))


NO_SERVICE_PRINCIPAL = "AADSTS7000229"


@dataclass(frozen=True)
class SecretCheck:
    """One client-credentials request with an app's secret, and what the token endpoint said."""

    verdict: str  # "accepted" (a token), "no-service-principal" (AADSTS7000229), "rejected", "unreachable"
    why: str


def secret_credential(session: Session, client_id: str, secret: Secret) -> Any:
    from azure.identity import ClientSecretCredential

    # The sign-in's transport and the tenant as the sign-in named it (a domain name, say, rather than the
    # GUID its token carries): the same authority URL, so its OpenID configuration is not read again.
    kw = {**auth.identity_kwargs(session.endpoints, session.connection.timeout), "retry_total": 0}
    named = session.connection.signin.tenant
    tenant = named if named and named.lower() not in ("common", "organizations", "consumers") else session.tenant_id
    return ClientSecretCredential(tenant, client_id, secret.reveal(), **kw)


def try_secret(session: Session, credential: Any) -> SecretCheck:
    from azure.core.exceptions import ClientAuthenticationError

    try:
        credential.get_token(session.endpoints.graph_scope)
        return SecretCheck("accepted", "accepted")
    except ClientAuthenticationError as exc:
        if NO_SERVICE_PRINCIPAL in str(exc):
            return SecretCheck("no-service-principal", "AADSTS7000229: the app has no service principal in the tenant")
        return SecretCheck("rejected", auth.explain_sign_in_failure(exc))
    except Exception as exc:  # network trouble
        return SecretCheck("unreachable", type(exc).__name__)


def poll_interval(elapsed: float) -> float:
    """Seconds until the next try of a new secret: a quarter second while it is young (Entra usually
    accepts one within seconds), then an eighth of the time waited so far (no try is more than ~12%
    late), at most 5 s."""
    return min(max(0.25, elapsed / 8), 5.0)


SERVICE_PRINCIPAL_WAIT = 30.0


async def ensure_service_principal(session: Session, client_id: str, *, fresh_object: bool = False) -> bool:
    """Create the app's service principal in the tenant unless it has one (True: created). A caller who may
    manage apps but not service principals gets PermissionDenied naming what is missing."""
    try:
        return await session.graph.create_service_principal(client_id, fresh_object=fresh_object)
    except GraphError as exc:
        if exc.status == 403:
            raise PermissionDenied(
                f"Microsoft Graph refused to create the service principal of the app {client_id} "
                f"({exc.code}): the signed-in identity may manage app registrations but not service principals.",
                hint=SERVICE_PRINCIPAL_HINT) from None
        raise


async def verify_secret(session: Session, client_id: str, secret: Secret, *, timeout: float) -> tuple[bool, str]:
    """Try the secret at the token endpoint until Entra issues a token (new secrets take seconds to work).

    Only a token counts. AADSTS7000229 (the app has no service principal in the tenant) says nothing
    about the secret: the service principal is created then (as the Entra admin center does for every
    registration) and the secret tried again.

    Each try runs on a worker thread and the waits are asyncio sleeps, so Ctrl-C (which cancels the
    command's task) stops the wait within a try instead of after the timeout."""
    cred = secret_credential(session, client_id, secret)
    started = time.monotonic()
    deadline, told, created = started + timeout, -60.0, False
    while True:
        check = await asyncio.to_thread(try_secret, session, cred)
        if check.verdict == "accepted":
            return True, "accepted"
        if check.verdict == "no-service-principal" and not created:
            session.progress.step("Creating the app's missing service principal")
            await ensure_service_principal(session, client_id, fresh_object=True)
            created = True
            deadline = max(deadline, time.monotonic() + SERVICE_PRINCIPAL_WAIT)  # it takes Entra a moment too
            continue
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False, check.why
        now = time.monotonic()
        if now - told >= 10:  # a try every fraction of a second: say so once, then every 10 s
            told = now
            session.progress.waiting("Waiting for Entra to accept the new client secret", remaining)
        await asyncio.sleep(min(poll_interval(now - started), remaining))


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def parse_time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    text = str(value).replace("Z", "+00:00")
    # Graph sends up to 7 fractional digits; fromisoformat (3.10) takes at most 6.
    if "." in text:
        head, _, tail = text.partition(".")
        digits = "".join(ch for ch in tail if ch.isdigit())
        rest = tail[len(digits):]
        text = f"{head}.{digits[:6]}{rest}"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
