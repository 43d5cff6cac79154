"""Failures the CLI turns into messages and exit codes. Each says what happened and what to do."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1           # Graph refused or failed, network, a file could not be written
    INVALID_INPUT = 2    # options, URLs, the .env file: nothing was changed
    SIGN_IN = 3          # could not sign in (credentials, tenant)
    PERMISSION = 4       # signed in, but not allowed (missing role or API permission)
    NOT_FOUND = 5        # the app named by .env / --app-id does not exist (deleted? other tenant?)
    FINDINGS = 6         # `status --fail-within`: a secret expires soon or a finding is an error
    NEEDS_CONFIRMATION = 7  # a destructive command without a terminal and without --yes
    DEPLOY_HOOK_FAILED = 8  # the new secret is in .env, a deploy hook failed or timed out: old secret kept
    HANGUP = 129         # SIGHUP (128 + 1): the terminal or SSH session went away; handled as Ctrl-C
    INTERRUPTED = 130    # Ctrl-C (128 + SIGINT), as shells report it
    TERMINATED = 143     # SIGTERM (128 + 15): systemctl stop, docker stop, timeout; handled as Ctrl-C


class CyphtAzureError(Exception):
    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"


class InputError(CyphtAzureError):
    exit_code = ExitCode.INVALID_INPUT


class SignInFailed(CyphtAzureError):
    exit_code = ExitCode.SIGN_IN


class PermissionDenied(CyphtAzureError):
    exit_code = ExitCode.PERMISSION


class AppNotFound(CyphtAzureError):
    exit_code = ExitCode.NOT_FOUND


class NeedsConfirmation(CyphtAzureError):
    exit_code = ExitCode.NEEDS_CONFIRMATION


class OperationFailed(CyphtAzureError):
    exit_code = ExitCode.FAILED


class DeployHookFailed(CyphtAzureError):
    """`.env` holds the new secret, but a deploy hook failed: a running Cypht may still use the old one."""

    exit_code = ExitCode.DEPLOY_HOOK_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint or (
            "Fix the hook, then run the same command again: it runs the hooks again and removes the old "
            "secret only after they succeed."))


ROLE_HINT = (
    "Sign in as a user with one of the Entra roles Application Developer, Cloud Application "
    "Administrator or Application Administrator, or as a service principal with the Microsoft Graph "
    "application permission Application.ReadWrite.All (or Application.ReadWrite.OwnedBy for apps it owns), "
    "granted admin consent."
)

SERVICE_PRINCIPAL_HINT = (
    "Creating the app's service principal (enterprise application) needs the Entra role Cloud Application "
    "Administrator or Application Administrator (Application Developer for apps it owns), or the Microsoft Graph "
    "application permission Application.ReadWrite.All (Application.ReadWrite.OwnedBy for apps it owns), granted "
    "admin consent. Or have an administrator run `az ad sp create --id <client ID>`, then run this again."
)
