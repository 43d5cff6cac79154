"""The :class:`Emulator` users start, and :func:`serve` for the foreground command."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from . import tls
from .admin import AdminHandlers, is_loopback
from .faults import Faults
from .identity import TokenService
from .models import Directory
from .requestlog import LogEntry, RequestLog
from .responses import Handlers
from .server import EmulatorHTTPServer, Pipeline, Router
from .signin import SIGN_IN_MODES, SignInHandlers, SignInMode
from .state import StateStore, write_json_atomic

INFO_FILE = "emulator.json"
LOCK_FILE = "emulator.lock"
WILDCARDS = ("0.0.0.0", "", "::")


class EmulatorStartError(Exception):
    """The emulator cannot start: the message says why and what to do."""


def _listen_problem(error: OSError, bind: str, port: int) -> str:
    if error.errno == errno.EADDRINUSE:
        return (f"Port {port} on {bind} is already in use (another emulator or program listens there). "
                "Stop it, choose another --port, or leave --port out for any free port.")
    if error.errno == errno.EACCES:
        return f"Not allowed to listen on port {port}: ports below 1024 need root. Choose a port from 1024 up."
    if error.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or isinstance(error, socket.gaierror):
        return f"Cannot listen on {bind!r}: it is not an address of this machine. Give one to --bind (default 127.0.0.1)."
    return f"Cannot listen on {bind}:{port}: {error.strerror or error}."


class Emulator:
    """A local Microsoft identity platform + Microsoft Graph v1.0 over HTTPS.

    >>> with Emulator() as emu:
    ...     emu.info["graph_url"]  # doctest: +SKIP
    """

    def __init__(self, state_dir: Path | str | None = None, bind: str = "127.0.0.1", port: int = 0, *,
                 hosts: Sequence[str] = (), sign_in: SignInMode = "page") -> None:
        """``bind``: the address to listen on; ``hosts``: extra names (DNS or IP) the TLS certificate carries,
        e.g. the name a Cypht container uses to reach it; ``sign_in``: ``page`` (a person signs in on the
        emulator's page) or ``auto`` (authorize answers at once for the account ``login_hint`` names)."""
        if sign_in not in SIGN_IN_MODES:
            raise ValueError(f"sign_in must be one of {', '.join(SIGN_IN_MODES)}, not {sign_in!r}")
        self.state_dir = None if state_dir is None else Path(state_dir)
        self.bind = bind
        self.port = port
        self.hosts = tuple(hosts)
        self.sign_in = sign_in
        self._workdir: Path | None = None
        self._owns_workdir = False
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.store = StateStore(self.state_dir, Directory.initial_state)
        self.directory = Directory(self.store)
        self.tokens = TokenService(self.directory)
        self.faults = Faults(self.directory, self._stopping)
        self._log = RequestLog()
        self._ca_file: Path | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> Emulator:
        if self._server is not None:
            return self
        names = tls.wanted_names([*self.hosts, *([] if self.bind in WILDCARDS else [self.bind])])
        if self.state_dir is not None:
            self._workdir = self.state_dir
            material = tls.load_or_create(self.state_dir, names)
        else:
            self._workdir = Path(tempfile.mkdtemp(prefix="cypht-azure-emulator-"))
            self._owns_workdir = True
            material = tls.process_material(names)
            tls.write_ca(material, self._workdir / tls.CA_FILE)
        self._ca_file = self._workdir / tls.CA_FILE
        context = tls.server_context(material, self._workdir)
        handlers = Handlers(self.directory, self.tokens)
        signin = SignInHandlers(self.tokens, self.sign_in)
        self.tokens.beyond_loopback = not is_loopback(self.bind)
        admin = AdminHandlers(self.tokens, self.faults, self._log, lambda: self.info,
                              loopback_only=is_loopback(self.bind))
        pipeline = Pipeline(Router(handlers, signin, admin, self.tokens, self.store), self.faults, self._log)
        self._stopping.clear()
        try:
            self._server = EmulatorHTTPServer((self.bind, self.port), context, pipeline)
        except OSError as error:
            if self._owns_workdir and self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)
            raise EmulatorStartError(_listen_problem(error, self.bind, self.port)) from None
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
            name=f"cypht-azure-emulator:{self.port}", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # wakes injected hangs and latencies
        # shutdown() waits for the serve loop's next poll; a throwaway connection wakes it at once.
        closer = threading.Thread(target=server.shutdown)
        closer.start()
        with contextlib.suppress(OSError):
            socket.create_connection((self._local_address, self.port), timeout=0.2).close()
        closer.join()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._owns_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        self.store.close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ------------------------------------------------------------ what clients need

    @property
    def _local_address(self) -> str:
        return "127.0.0.1" if self.bind in WILDCARDS else self.bind

    @property
    def base_url(self) -> str:
        host = self._local_address
        return f"https://[{host}]:{self.port}" if ":" in host else f"https://{host}:{self.port}"

    @property
    def ca_file(self) -> str:
        if self._ca_file is None:
            raise RuntimeError("the emulator is not started")
        return str(self._ca_file)

    @property
    def info(self) -> dict[str, Any]:
        seed = self.directory.seed
        return {
            "authority_host": self.base_url,
            "graph_url": f"{self.base_url}/v1.0",
            "ca_file": self.ca_file,
            "tenant_id": self.directory.tenant_id,
            "tenant_domain": self.directory.domain,
            "admin_client_id": seed["admin_client_id"],
            "admin_client_secret": seed["admin_client_secret"],
            "admin_user": seed["admin_user"],
            "device_code_client_id": seed["device_code_client_id"],
            "identity_header": self.tokens.identity_header,
            "state_dir": None if self.state_dir is None else str(self.state_dir),
            "sign_in": self.sign_in,
            "bind": self.bind,
            "hosts": list(self.hosts),
            "live_authorize_url": f"{self.base_url}/oauth20_authorize.srf",
            "live_token_url": f"{self.base_url}/oauth20_token.srf",
        }

    @property
    def request_log(self) -> list[LogEntry]:
        return self._log.snapshot()

    def clear_log(self) -> None:
        self._log.clear()

    def issue_access_token(
        self, *, client_id: str | None = None, upn: str | None = None, roles: list[str] | None = None,
        scopes: str | None = None, lifetime: int = 3599, audience: str = "https://graph.microsoft.com",
    ) -> str:
        """A bearer token as the token endpoint would issue it (negative ``lifetime`` gives an expired one)."""
        tid = self.directory.tenant_id
        if upn is not None:
            user = self.directory.user_by_key(upn)
            if user is None:
                raise KeyError(upn)
            return self.tokens.access_token(
                tid=tid, oid=user["id"], appid=client_id or self.directory.seed["device_code_client_id"],
                idtyp="user", audience=audience, scp=scopes or "Application.ReadWrite.All User.Read",
                lifetime=lifetime, upn=user["userPrincipalName"], name=user["displayName"],
            )
        client_id = client_id or self.directory.seed["admin_client_id"]
        caller = self.directory.caller_for_app(client_id)
        if not caller.object_id:
            raise KeyError(client_id)
        granted = sorted(caller.roles) if roles is None else roles
        return self.tokens.access_token(tid=tid, oid=caller.object_id, appid=client_id, idtyp="app",
                                        audience=audience, roles=granted, lifetime=lifetime)

    def bulk_seed_applications(self, n: int, tag: str | None = "cypht-azure", **kwargs: Any) -> list[dict[str, str]]:
        """``n`` tagged applications with a password credential each, in one transaction (5,000 in ~0.2 s)."""
        return self.directory.bulk_seed_applications(n, tag, **kwargs)

    def client_env(self) -> dict[str, str]:
        """Environment variables that point azure-identity and HTTP clients at this emulator."""
        info = self.info
        return {
            "AZURE_AUTHORITY_HOST": info["authority_host"],
            "AZURE_TENANT_ID": info["tenant_id"],
            "AZURE_CLIENT_ID": info["admin_client_id"],
            "AZURE_CLIENT_SECRET": info["admin_client_secret"],
            "REQUESTS_CA_BUNDLE": info["ca_file"],
            "SSL_CERT_FILE": info["ca_file"],
        }


def _usage(info: dict[str, Any], info_file: Path) -> str:
    base = info["authority_host"]
    # Cypht (e.g. in a container) reaches the emulator by the first --host name, if one was given.
    first = info["hosts"][0] if info["hosts"] else None
    port = base.rsplit(":", 1)[1]
    cypht_base = base if first is None else f"https://[{first}]:{port}" if ":" in first else f"https://{first}:{port}"
    secret = ("\"$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[\"admin_client_secret\"])' "
              f"{shlex.quote(str(info_file))})\"")
    lines = [
        f"cypht-azure emulator listening on {base} (tenant {info['tenant_id']})",
        f"  details (incl. the admin client secret): {info_file}",
    ]
    if not is_loopback(info["bind"]):
        names = ", ".join(info["hosts"]) or "none given"
        lines += [f"  bound to {info['bind']}; certificate names: 127.0.0.1, localhost and {names} (--host)",
                  "  /_emulator/* answers only with the admin's token (client credentials of AZURE_CLIENT_ID below);",
                  "  no other token path gives admin rights: /msi/token wants X-IDENTITY-HEADER = identity_header of "
                  "the details file, a device code waits for the admin's POST /_emulator/devicelogin, federated "
                  "assertions are refused, the sign-in page refuses administrators"]
    lines += [
        "",
        "Point azure-identity / SDK clients at it:",
        f"  export AZURE_AUTHORITY_HOST={base}",
        f"  export REQUESTS_CA_BUNDLE={shlex.quote(info['ca_file'])}",
        f"  export SSL_CERT_FILE={shlex.quote(info['ca_file'])}",
        f"  export AZURE_TENANT_ID={info['tenant_id']}",
        f"  export AZURE_CLIENT_ID={info['admin_client_id']}",
        f"  export AZURE_CLIENT_SECRET={secret}",
        "  (and pass disable_instance_discovery=True to azure-identity credentials)",
        "",
        "Point cypht-azure at it (after the exports above):",
        f"  cypht-azure provision --auth environment --authority-host {base} --graph-url {info['graph_url']} "
        f"--ca-file {shlex.quote(info['ca_file'])} --tenant {info['tenant_id']} "
        "--url https://mail.example.org --env-file ./cypht.env",
        "",
        f"Sign-in ({info['sign_in']}: "
        + ("a browser signs in on the emulator's page" if info["sign_in"] == "page"
           else "authorize answers at once for the login_hint account") + "); for Cypht's .env, as "
        + "`provision --emulator-endpoints" + ("" if first is None else f" --emulator-url {cypht_base}")
        + "` writes them:",
        # single-quoted, as cypht-azure writes every .env value (symfony/dotenv takes them literally)
        *(f"  {key}='{value}'" for key, value in cypht_endpoint_lines(cypht_base).items()),
        "",
        "Press Ctrl+C to stop.",
    ]
    return "\n".join(lines)


def cypht_endpoint_lines(base: str) -> dict[str, str]:
    """The endpoint keys of Cypht's two provider blocks for a rehearsal against the emulator at ``base``.

    Cypht asks for its hard-coded ``wl.imap`` scope, which only login.live.com's endpoints grant (the
    v2.0 ones answer AADSTS650053), so both blocks get the Live endpoints this emulator serves: those
    of Cypht's defaults (config/oauth2.php), refresh included, as ``provision --emulator-endpoints``
    writes them for the registration it makes (personal accounts included)."""
    live = {"AUTH_URI": "/oauth20_authorize.srf", "TOKEN_URI": "/oauth20_token.srf",
            "REFRESH_URI": "/oauth20_token.srf"}
    return {f"{block}_{key}": base.rstrip("/") + path for block in ("OUTLOOK", "OFFICE365") for key, path in live.items()}


def _lock_state_dir(state_path: Path) -> int:
    """Hold ``emulator.lock`` for the server's life: a second emulator on the same state dir is refused."""
    state_path.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        try:
            other = json.loads((state_path / INFO_FILE).read_text())
            who = f" (pid {other.get('pid')}, {other.get('authority_host')})"
        except (OSError, ValueError):
            who = ""
        raise EmulatorStartError(
            f"Another emulator{who} is serving {state_path}. Stop it first, or give this one another --state-dir."
        ) from None
    return fd


def serve(state_dir: Path | str, port: int = 0, bind: str = "127.0.0.1", *, hosts: Sequence[str] = (),
          sign_in: SignInMode = "page", ready: threading.Event | None = None,
          stop: threading.Event | None = None) -> None:
    """Run in the foreground until interrupted; writes ``DIR/emulator.json`` when ready.

    Raises EmulatorStartError when the state dir is in use by another emulator or the port cannot be had.
    """
    state_path = Path(state_dir)
    lock_fd = _lock_state_dir(state_path)
    try:
        _serve_locked(state_path, port, bind, hosts, sign_in, ready, stop)
    finally:
        os.close(lock_fd)


def _serve_locked(state_path: Path, port: int, bind: str, hosts: Sequence[str], sign_in: SignInMode,
                  ready: threading.Event | None, stop: threading.Event | None) -> None:
    emu = Emulator(state_path, bind=bind, port=port, hosts=hosts, sign_in=sign_in).start()
    stop_event = stop or threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop_event.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    info_file = state_path / INFO_FILE
    try:
        info = emu.info
        info["pid"] = os.getpid()
        info["started"] = dt.datetime.now(dt.timezone.utc).isoformat()
        write_json_atomic(info_file, info)
        print(_usage(info, info_file), flush=True)
        if ready is not None:
            ready.set()
        while not stop_event.wait(0.2):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        emu.stop()
        with contextlib.suppress(FileNotFoundError):
            info_file.unlink()
        print("cypht-azure emulator stopped", file=sys.stderr, flush=True)
