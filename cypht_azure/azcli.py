"""`--auth azure-cli`: the Azure CLI's token, with `az` started before the heavy imports.

`az account get-access-token` takes about a second to start (it is a Python program with its own
imports), longer than our own start-up. When the command line (or CYPHT_AZURE_AUTH) says `--auth
azure-cli`, it is started before anything else is imported (__main__.py; again from the parsed options
in cli/common.py if that missed it), so both start at once; the credential here reads its answer when
the token is first needed. It is azure-identity's AzureCliCredential in behaviour: the same command line
(`az account get-access-token --output json --resource R [--tenant T]`, run from /bin with
AZURE_CORE_NO_COLOR=true and no stdin), the same parsing of the answer and the same errors with the
same texts (CredentialUnavailableError / ClientAuthenticationError), so messages and exit codes do not
change. A process started early is used only if its command line is the one the token needs (a tenant
or cloud recorded for the installation may change it); otherwise it is stopped and the right one run.
Nothing of azure-identity is imported unless an error has to be raised.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from datetime import datetime
from typing import Any

COMMAND_LINE = ["account", "get-access-token", "--output", "json"]
CLI_NOT_FOUND = "Azure CLI not found on path"
NOT_LOGGED_IN = "Please run 'az login' to set up an account"
PROCESS_TIMEOUT = 10.0  # azure-identity's default process_timeout
_TENANT_CHARS = re.compile(r"[0-9A-Za-z.-]+")
_SCOPE_CHARS = re.compile(r"[0-9A-Za-z._:/-]+")


def validate_tenant_id(tenant_id: str) -> None:
    if not _TENANT_CHARS.fullmatch(tenant_id or ""):
        raise ValueError("Invalid tenant ID provided. You can locate your tenant ID by following the instructions "
                         "here: https://learn.microsoft.com/partner-center/find-ids-and-domain-names")


def validate_scope(scope: str) -> None:
    if not _SCOPE_CHARS.fullmatch(scope or ""):
        raise ValueError("An invalid scope was provided. Only alphanumeric characters, '.', '-', '_', ':', and '/' "
                         "are allowed.")

_lock = threading.Lock()
_early: Started | None = None


class Started:
    """One `az account get-access-token` process, started now, read later."""

    def __init__(self, args: list[str]) -> None:
        self.args = args
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd="/bin",
            universal_newlines=True, env=dict(os.environ, AZURE_CORE_NO_COLOR="true"))

    def result(self, timeout: float) -> tuple[int, str, str]:
        """(exit status, stdout, stderr); TimeoutExpired when `timeout` seconds since the start ran out."""
        remaining = max(0.0, self.started + timeout - time.monotonic())
        try:
            out, err = self.proc.communicate(timeout=remaining)
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        return self.proc.returncode, out, err

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


def command(resource: str, tenant: str | None) -> list[str] | None:
    """The command line AzureCliCredential runs for `resource` (None when `az` is not on PATH)."""
    az = shutil.which("az")
    if not az:
        return None
    return [az, *COMMAND_LINE, "--resource", resource, *(["--tenant", tenant] if tenant else [])]


def start_early(resource: str, tenant: str | None) -> None:
    """Start the token request now, for the credential to read later (see the module docstring)."""
    global _early
    args = command(resource, tenant)
    if args is None:
        return
    with _lock:
        if _early is None:
            try:
                _early = Started(args)
            except OSError:
                _early = None


SIGNS_IN = frozenset({"provision", "rotate-secret", "status", "doctor", "deprovision", "restore"})


def _option(argv: list[str], name: str) -> str | None:
    """The last value of `--name V` or `--name=V` in argv."""
    value = None
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(name + "="):
            value = arg[len(name) + 1:]
    return value


def start_from_command_line(argv: list[str], environ: dict[str, str] | os._Environ[str] = os.environ) -> None:
    """Before anything else is imported: when this command line signs in with `--auth azure-cli`, start
    `az` now. Read as the options will be (command line, then CYPHT_AZURE_*); should the parsed options
    or the installation's recorded settings ask for another command line, the credential runs that one."""
    if not argv or argv[0] not in SIGNS_IN or {"-h", "--help", "--sandbox"} & set(argv):
        return
    if (_option(argv, "--auth") or environ.get("CYPHT_AZURE_AUTH")) != "azure-cli":
        return
    if (environ.get("CYPHT_AZURE_SANDBOX") or "").lower() in ("1", "true", "yes", "on"):
        return
    from cypht_azure.auth import CLOUDS

    cloud = _option(argv, "--cloud") or environ.get("CYPHT_AZURE_CLOUD") or "public"
    tenant = _option(argv, "--tenant") or environ.get("CYPHT_AZURE_TENANT") or environ.get("AZURE_TENANT_ID") or None
    if cloud not in CLOUDS:
        return
    start_early(scopes_to_resource(CLOUDS[cloud].graph_scope), tenant)
    import atexit

    atexit.register(AzureCliToken().close)


def _take(args: list[str]) -> Started | None:
    global _early
    with _lock:
        early, _early = _early, None
    if early is not None and early.args != args:
        early.stop()  # started for another tenant or cloud than the token needs
        return None
    return early


def scopes_to_resource(*scopes: str) -> str:
    """azure-identity's _scopes_to_resource: one scope, without its /.default."""
    if len(scopes) != 1:
        raise ValueError("This credential requires exactly one scope per token request.")
    resource = scopes[0]
    return resource[: -len("/.default")] if resource.endswith("/.default") else resource


def sanitize_output(output: str) -> str:
    return re.sub(r"\"accessToken\": \"(.*?)(\"|$)", "****", output)


def parse_token(output: str) -> Any:
    from azure.core.credentials import AccessToken

    try:
        token = json.loads(output)
        if "expires_on" in token:
            return AccessToken(token["accessToken"], int(token["expires_on"]))
        when = datetime.strptime(token["expiresOn"], "%Y-%m-%d %H:%M:%S.%f")
        return AccessToken(token["accessToken"], int(when.timestamp()))
    except (KeyError, ValueError, TypeError):
        return None


def _unavailable(message: str) -> Exception:
    from azure.identity import CredentialUnavailableError

    return CredentialUnavailableError(message=message)


def _refused(message: str) -> Exception:
    from azure.core.exceptions import ClientAuthenticationError

    return ClientAuthenticationError(message=message)


class AzureCliToken:
    """A TokenCredential reading the Azure CLI's token, from the process started early when it fits."""

    def __init__(self, tenant_id: str | None = None, process_timeout: float = PROCESS_TIMEOUT) -> None:
        if tenant_id:
            validate_tenant_id(tenant_id)
        self.tenant_id = tenant_id
        self.process_timeout = process_timeout
        self.processes = 0  # `az` processes whose answer this credential read

    def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                  **kwargs: Any) -> Any:
        if claims:
            from azure.identity import AzureCliCredential

            credential = AzureCliCredential(tenant_id=self.tenant_id) if self.tenant_id else AzureCliCredential()
            return credential.get_token(*scopes, claims=claims, tenant_id=tenant_id, **kwargs)
        if tenant_id:
            validate_tenant_id(tenant_id)
        for scope in scopes:
            validate_scope(scope)
        args = command(scopes_to_resource(*scopes), tenant_id or self.tenant_id)
        if args is None:
            raise _unavailable(CLI_NOT_FOUND)
        try:
            started = _take(args) or Started(args)
        except OSError as exc:
            raise _unavailable(f"Failed to execute '{args[0]}'") from exc
        self.processes += 1
        try:
            status, out, err = started.result(self.process_timeout)
        except Exception as exc:  # a timeout, for example
            raise _unavailable("Failed to invoke the Azure CLI") from exc
        if status != 0:
            if status == 127:
                raise _unavailable(CLI_NOT_FOUND)
            if err and ("az login" in err or "az account set" in err) and "AADSTS" not in err:
                raise _unavailable(NOT_LOGGED_IN)
            raise _refused(sanitize_output(err) if err else "Failed to invoke Azure CLI")
        token = parse_token(out)
        if token is None:
            raise _refused(f"Unexpected output from Azure CLI: '{sanitize_output(out)}'. \n"
                           "To mitigate this issue, please refer to the troubleshooting guidelines here at "
                           "https://aka.ms/azsdk/python/identity/azclicredential/troubleshoot.")
        return token

    def close(self) -> None:
        early = _take([])
        if early is not None:
            early.stop()
