"""What every command shares: sign-in and output options, progress, rendering, errors -> exit codes.

Kept free of heavy imports: `--help` must not load azure-identity or msgraph-sdk.
"""

from __future__ import annotations

import functools
import inspect
import os
import shutil
import time
import typing
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from cypht_azure.auth import AUTH_METHODS, CLOUDS
from cypht_azure.cli.output import STDERR, STDOUT
from cypht_azure.errors import CyphtAzureError, ExitCode

SIGN_IN = "Sign-in and endpoints"
OUTPUT = "Output"
ENV_PREFIX = "CYPHT_AZURE_"


def env(name: str) -> str:
    return ENV_PREFIX + name


def choices(values: Iterable[str]) -> str:
    """An option's metavar that lists what it accepts, as `--help` shows it: `[a|b|c]`."""
    return "[" + "|".join(values) + "]"


AuthOpt = Annotated[str, typer.Option(
    "--auth", envvar=env("AUTH"), rich_help_panel=SIGN_IN, metavar=choices(AUTH_METHODS),
    help="How to sign in: auto, azure-cli, device-code, browser, environment, workload-identity, "
         "managed-identity. auto tries environment, workload identity, managed identity and `az login`, "
         "then device code on a terminal.",
)]
TenantOpt = Annotated[str | None, typer.Option(
    "--tenant", metavar="TENANT", envvar=[env("TENANT"), "AZURE_TENANT_ID"], rich_help_panel=SIGN_IN,
    help="Tenant ID or domain (e.g. contoso.onmicrosoft.com). Default: the sign-in's home tenant.",
)]
CloudOpt = Annotated[str, typer.Option(
    "--cloud", metavar=choices(CLOUDS), envvar=env("CLOUD"), rich_help_panel=SIGN_IN,
    help="Which Entra cloud: public, usgov (US Government) or china (21Vianet).",
)]
AuthorityOpt = Annotated[str | None, typer.Option(
    "--authority-host", metavar="URL", envvar=[env("AUTHORITY_HOST"), "AZURE_AUTHORITY_HOST"], rich_help_panel=SIGN_IN,
    help="Sign-in endpoint for private or emulated deployments, e.g. https://login.example.test",
)]
GraphUrlOpt = Annotated[str | None, typer.Option(
    "--graph-url", metavar="URL", envvar=env("GRAPH_URL"), rich_help_panel=SIGN_IN,
    help="Microsoft Graph base URL including the version, e.g. https://graph.microsoft.com/v1.0",
)]
CaFileOpt = Annotated[str | None, typer.Option(
    "--ca-file", metavar="PEM", envvar=env("CA_FILE"), rich_help_panel=SIGN_IN,
    help="Extra CA certificate (PEM) to trust for the endpoints. Verification is never turned off.",
)]
SandboxOpt = Annotated[bool, typer.Option(
    "--sandbox", envvar=env("SANDBOX"), rich_help_panel=SIGN_IN,
    help="Run against the embedded local emulator instead of Azure (no tenant needed). Not Azure: "
         "nothing you do here reaches Microsoft.",
)]
SandboxDirOpt = Annotated[Path | None, typer.Option(
    "--sandbox-dir", metavar="DIR", envvar=env("SANDBOX_DIR"), rich_help_panel=SIGN_IN,
    help="Where --sandbox keeps its tenant between commands. Default: $XDG_STATE_HOME/cypht-azure/sandbox.",
)]
TimeoutOpt = Annotated[float, typer.Option(
    "--timeout", metavar="SECONDS", envvar=env("TIMEOUT"), rich_help_panel=SIGN_IN, min=1.0,
    help="Seconds to wait for one Graph response before retrying.",
)]
JsonOpt = Annotated[bool, typer.Option(
    "--json", envvar=env("JSON"), rich_help_panel=OUTPUT,
    help="Print one JSON object on stdout (documented in docs/json.md); messages go to stderr.",
)]
VerboseOpt = Annotated[bool, typer.Option(
    "--verbose", "-v", envvar=env("VERBOSE"), rich_help_panel=OUTPUT,
    help="Log each Graph request (method, path, status, request-id) to stderr. Never logs secrets.",
)]
QuietOpt = Annotated[bool, typer.Option(
    "--quiet", "-q", envvar=env("QUIET"), rich_help_panel=OUTPUT, help="Print only errors.",
)]
EnvFileOpt = Annotated[str | None, typer.Option(
    "--env-file", metavar="PATH", envvar=[env("ENV_FILE"), "CYPHT_DOTENV"], show_default="./.env",
    help="Cypht's .env file (for Docker: the compose env_file). Default: $CYPHT_DOTENV, else ./.env.",
)]

# The options that name an existing app (rotate-secret, status, deprovision).
AppIdOpt = Annotated[str | None, typer.Option(
    "--app-id", metavar="CLIENT_ID", envvar=env("APP_ID"),
    help="The app registration (client ID) to act on. Default: the one .env names.",
)]
FindByUrlOpt = Annotated[str | None, typer.Option(
    "--url", metavar="URL", envvar=env("URL"),
    help="Find the app by Cypht's URL (as given to provision) instead of by .env.",
)]
DryRunOpt = Annotated[bool, typer.Option(
    "--dry-run", envvar=env("DRY_RUN"), help="Show what would change; change nothing.",
)]

# Unattended renewal (provision and rotate-secret).
RENEWAL = "Deploy hooks and alerts"
DeployHookOpt = Annotated[list[str] | None, typer.Option(
    "--deploy-hook", metavar="CMD", rich_help_panel=RENEWAL,
    help="Shell command to run after .env holds the new secret and before the old one is removed, e.g. "
         "'docker compose up -d cypht' (repeatable). Then the executables in the hooks folder run: "
         "/etc/cypht-azure/deploy-hooks.d/ for root, $XDG_CONFIG_HOME/cypht-azure/deploy-hooks.d/ otherwise. "
         "A failing hook keeps the old secret and exits 8.",
)]
DeployHookTimeoutOpt = Annotated[float, typer.Option(
    "--deploy-hook-timeout", metavar="SECONDS", envvar=env("DEPLOY_HOOK_TIMEOUT"), min=1.0, rich_help_panel=RENEWAL,
    help="Seconds each deploy hook may run before it is stopped (and counts as failed).",
)]
RunDeployHooksOpt = Annotated[bool, typer.Option(
    "--run-deploy-hooks", envvar=env("RUN_DEPLOY_HOOKS"), rich_help_panel=RENEWAL,
    help="With --dry-run: run the deploy hooks too (against the secret .env holds now), to test them.",
)]
SkipDeployHooksOpt = Annotated[bool, typer.Option(
    "--skip-deploy-hooks", envvar=env("SKIP_DEPLOY_HOOKS"), rich_help_panel=RENEWAL,
    help="Run no deploy hook, not even those of the hooks folder. When an earlier run's hooks failed, this "
         "is the only way to remove the old secret without them (a run with no hooks keeps it).",
)]
NotifyOpt = Annotated[list[str] | None, typer.Option(
    "--notify", metavar="URL", envvar=env("NOTIFY"), rich_help_panel=RENEWAL,
    help="POST a JSON event to this webhook on every rotation, every failure and every secret expiring "
         "within 14 days that was not replaced (repeatable; https, or http to this machine only; kept in the "
         "installation record for later runs). Never the secret.",
)]


@dataclass
class Common:
    """The shared options of one command invocation."""

    auth: str = "auto"
    tenant: str | None = None
    cloud: str = "public"
    authority_host: str | None = None
    graph_url: str | None = None
    ca_file: str | None = None
    sandbox: bool = False
    sandbox_dir: Path | None = None
    timeout: float = 30.0
    json: bool = False
    verbose: bool = False
    quiet: bool = False
    # Options given on the command line or in the environment (not defaulted): what the installation
    # record keeps, and what a recorded setting must not override.
    user_set: frozenset[str] = frozenset()

    def sign_in(self) -> Any:
        """These options as the operations take them (operations.core.connect.SignIn)."""
        from cypht_azure.operations.core.connect import SignIn

        return SignIn(auth=self.auth, tenant=self.tenant, cloud=self.cloud, authority_host=self.authority_host,
                      graph_url=self.graph_url, ca_file=self.ca_file, sandbox=self.sandbox,
                      sandbox_dir=self.sandbox_dir, timeout=self.timeout, user_set=self.user_set)


def error_document(kind: str, message: str, hint: str | None, code: int) -> str:
    """The JSON error object (docs/schemas/error.json) that --json prints on stdout for any failure."""
    import json

    return json.dumps({"error": {"type": kind, "message": message, "hint": hint, "exit_code": code}}, indent=2)


# How long a plain (non-terminal) progress report stays silent before it says again that it waits.
PLAIN_WAIT_INTERVAL = 10.0


class Output:
    """Human lines on stdout, progress on stderr, or one JSON document.

    Progress on a terminal is one live line, rewritten in place for each step and each tick of a wait,
    and erased before anything else is printed. Off a terminal (cron, CI) steps stay silent, so a
    scheduled run that does nothing prints nothing, and a wait is a plain line at most every 10 s,
    saying how long it has waited so far. Every line goes through `cli.output` (STDOUT, STDERR), which
    survives a closed pipe, a full disk or a closed descriptor: output never changes what is applied.
    """

    def __init__(self, common: Common) -> None:
        self.json = common.json
        self.quiet = common.quiet
        self.tty = STDERR.isatty()
        self.color = self.tty and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
        self._live = False
        self._wait: tuple[str, float] | None = None  # (message, when that wait began)
        self._last_plain = 0.0
        self._carried: list[tuple[str, str, str | None]] | None = None
        self._shown_steps = False  # plan steps were printed as they completed
        self.last_error: str | None = None

    # Progress (the Progress protocol of operations.session)
    def step(self, message: str) -> None:
        self._wait = None
        if self.tty and not self.quiet:
            self._show_live(f"… {message}")

    def waiting(self, message: str, seconds: float) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        if self._wait is None or self._wait[0] != message:
            self._wait = (message, now)
        waited = now - self._wait[1]
        if self.tty:
            self._show_live(f"… {message} ({waited:.0f} s so far)" if waited >= 1 else f"… {message}")
        elif now - self._last_plain >= PLAIN_WAIT_INTERVAL:
            self._last_plain = now
            STDERR.line(f"… {message} ({waited:.0f} s so far)" if waited >= 1 else f"… {message}")

    def finish(self) -> None:
        """Erase the live progress line (the command is done, or something else is printed)."""
        if self._live:
            STDERR.write("\r\033[K")
            self._live = False

    def _show_live(self, text: str) -> None:
        width = shutil.get_terminal_size((80, 24)).columns
        if len(text) >= width:  # a wrapped line could not be rewritten in place
            text = text[: max(width - 2, 1)] + "…"
        STDERR.write("\r\033[K" + self._dim(text))
        self._live = True

    def contextual(self, text: str) -> str:
        """`text` with the commands it suggests completed by this run's --sandbox, --env-file, --tenant …"""
        from cypht_azure.cli.help import carried_options, with_context

        if self._carried is None:
            self._carried = carried_options()
        return with_context(text, self._carried)

    def record(self, record: Any) -> None:
        """A plan step as it completes (or is undone): the real run shows the plan's own steps."""
        if self.quiet or self.json:
            return
        self.finish()
        if not self._shown_steps:
            self._shown_steps = True
            STDOUT.line(self.bold("Applying the plan:"))
        STDOUT.line(_step_line(record))

    def note(self, message: str) -> None:
        if not self.quiet:
            self.finish()
            (STDERR if self.json else STDOUT).line(self.contextual(message))

    def warn(self, message: str) -> None:
        self.finish()
        STDERR.line(self._yellow(f"warning: {self.contextual(message)}"))

    def error_line(self, text: str) -> None:
        """An error on stderr only (the outcome document, if any, was already printed)."""
        self.finish()
        STDERR.line(self._red(f"error: {self.contextual(text)}"))

    def error(self, exc: BaseException, code: int) -> None:
        self.last_error = str(getattr(exc, "message", exc))
        self.finish()
        STDERR.line(self._red(f"error: {self.contextual(str(exc))}"))
        if self.json:
            hint = getattr(exc, "hint", None)
            STDOUT.line(error_document(type(exc).__name__, self.contextual(getattr(exc, "message", str(exc))),
                                       self.contextual(hint) if hint else hint, code))

    def document(self, data: dict[str, Any]) -> None:
        import json

        self.finish()
        STDOUT.line(json.dumps(data, indent=2, sort_keys=False, default=str))

    def _wrap(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def _dim(self, text: str) -> str:
        return self._wrap("2", text)

    def _yellow(self, text: str) -> str:
        return self._wrap("33", text)

    def _red(self, text: str) -> str:
        return self._wrap("31", text)

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def green(self, text: str) -> str:
        return self._wrap("32", text)


T = TypeVar("T")

# The shared options, appended to every command's signature by `command()` below.
_SHARED: list[tuple[str, Any, Any]] = [
    ("auth", AuthOpt, "auto"), ("tenant", TenantOpt, None), ("cloud", CloudOpt, "public"),
    ("authority_host", AuthorityOpt, None), ("graph_url", GraphUrlOpt, None), ("ca_file", CaFileOpt, None),
    ("sandbox", SandboxOpt, False), ("sandbox_dir", SandboxDirOpt, None), ("timeout", TimeoutOpt, 30.0),
    ("json", JsonOpt, False), ("verbose", VerboseOpt, False), ("quiet", QuietOpt, False),
]


def command(func: Callable[..., None]) -> Callable[..., None]:
    """Give a command `func(common: Common, **own_options)` the shared sign-in and output options.

    Typer reads the wrapper's signature, so every command lists the same options, with the same
    environment variables and help, without repeating them in each module.
    """
    own = inspect.signature(func, eval_str=True)
    hints = typing.get_type_hints(func, include_extras=True)
    params = [p.replace(annotation=hints.get(p.name, p.annotation))
              for p in own.parameters.values() if p.name != "common"]
    shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
              for name, annotation, default in _SHARED]

    context = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)

    @functools.wraps(func)
    def wrapper(ctx: typer.Context, **kwargs: Any) -> None:
        user_set = frozenset(name for name in kwargs
                             if getattr(ctx.get_parameter_source(name), "name", "") in ("COMMANDLINE", "ENVIRONMENT"))
        common = Common(**{name: kwargs.pop(name) for name, _, _ in _SHARED}, user_set=user_set)
        if common.verbose and common.quiet:
            from cypht_azure.errors import InputError

            Output(common).error(InputError("--verbose and --quiet contradict each other.",
                                            hint="Give one of them (check CYPHT_AZURE_VERBOSE and "
                                                 "CYPHT_AZURE_QUIET in the environment)."),
                                 int(ExitCode.INVALID_INPUT))
            raise typer.Exit(int(ExitCode.INVALID_INPUT))
        if common.auth == "azure-cli" and not common.sandbox and ctx.info_name in azcli_commands():
            _start_azure_cli(common)  # unless started from the command line already (start.py)
        try:
            func(common=common, **kwargs)
        except KeyboardInterrupt:  # Ctrl-C, SIGTERM or SIGHUP outside run(): one line, the signal's code
            from cypht_azure import interrupts

            if not interrupts.told():
                Output(common).error_line(interrupts.message())
            raise typer.Exit(interrupts.exit_code()) from None

    all_params = [context] + [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params] + shared
    wrapper.__signature__ = own.replace(parameters=all_params, return_annotation=None)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in all_params}
    del wrapper.__wrapped__  # Typer must see the wrapper's signature, not the original's
    return wrapper


def azcli_commands() -> frozenset[str]:
    from cypht_azure.azcli import SIGNS_IN

    return SIGNS_IN


def _start_azure_cli(common: Common) -> None:
    """Start `az account get-access-token` before the command loads its Graph and sign-in stacks, so
    the Azure CLI's start (about a second) overlaps ours; stopped at exit if no one read it."""
    import atexit

    from cypht_azure import auth, azcli

    if common.cloud in auth.CLOUDS:
        auth.start_azure_cli(common.cloud, common.tenant)
        atexit.register(azcli.AzureCliToken().close)


def run(common: Common, out: Output, action: Callable[[], T]) -> T:
    """Run one operation; map every failure to a message and an exit code (never a traceback with locals)."""
    from cypht_azure import envfile
    from cypht_azure.cli.logs import configure_logging

    configure_logging(common)
    if common.sandbox:
        from cypht_azure import sandbox
        from cypht_azure.operations.unattended import toolfiles

        toolfiles.log_in_sandbox(common.sandbox_dir or sandbox.default_dir())
    try:
        return action()
    except CyphtAzureError as exc:
        if int(exc.exit_code) > 128:  # an interruption, reported with what it left behind: once
            from cypht_azure import interrupts

            interrupts.mark_told()
        out.error(exc, int(exc.exit_code))
        raise typer.Exit(int(exc.exit_code)) from None
    except envfile.EnvFileError as exc:
        out.error(exc, int(ExitCode.INVALID_INPUT))
        raise typer.Exit(int(ExitCode.INVALID_INPUT)) from None
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM or SIGHUP outside the plan's steps (cypht_azure.interrupts)
        from cypht_azure import interrupts

        out.error(Exception(interrupts.message()), interrupts.exit_code())
        raise typer.Exit(interrupts.exit_code()) from None
    except ValueError as exc:
        out.error(exc, int(ExitCode.INVALID_INPUT))
        raise typer.Exit(int(ExitCode.INVALID_INPUT)) from None
    except OSError as exc:
        out.error(Exception(f"{exc.strerror or exc} ({exc.filename})" if exc.filename else str(exc)),
                  int(ExitCode.FAILED))
        raise typer.Exit(int(ExitCode.FAILED)) from None
    finally:
        out.finish()


_MARKS = {"planned": "-", "done": "done:", "undone": "undone:", "failed": "FAILED:", "not run": "not run:"}


def _step_line(record: Any) -> str:
    mark = _MARKS.get(record.status, record.status)
    commit = " [commit point]" if record.step.commit else ""
    return f"  {mark} {record.line()}{commit}"


def render_findings(out: Output, findings: Iterable[Any]) -> None:
    """status's and doctor's findings, one way: severity, code, message, then the fix."""
    for f in findings:
        label = {"error": "ERROR", "warning": "WARNING"}.get(f.severity, f.severity.upper())
        out.note(f"{label} [{f.code}] {f.message}")
        if f.fix:
            out.note(f"    fix: {f.fix}")


def render_outcome(out: Output, result: Any, *, common: Common, headline: str | None = None,
                   details: list[tuple[str, str]] | None = None, next_step: str | None = None) -> None:
    """The one renderer of a command's outcome: `--json` is the result's own document; the text is
    its plan (dry run) or the steps as done, then one line saying where things stand, then details.

    `headline` replaces the standard last line (e.g. a skipped rotation)."""
    if common.json:
        out.document(result.to_json() | {"sandbox": common.sandbox})
        return
    if out.quiet:
        return
    if result.dry_run:
        out.note(out.bold("Plan (dry run, nothing changed):"))
        for line in result.notes:
            out.note(f"  - {line}")
        for record in result.steps:
            out.note(_step_line(record))
        if not result.steps:
            out.note("  (no steps: nothing to change)")
    else:
        for line in result.notes:
            out.note(f"  note: {line}")
        if out._shown_steps:
            out.note("")
        out.note(out.bold(headline or ("Done." if result.changed else "Nothing to do: everything is already right.")))
    if details:
        width = max(len(label) for label, _ in details)
        for label, value in details:
            out.note(f"  {label.ljust(width)}  {value}")
    if next_step and not result.dry_run and result.changed:
        out.note("")
        out.note(next_step)


@contextmanager
def sandbox_banner(out: Output, enabled: bool) -> Iterator[None]:
    if enabled and not out.quiet:
        STDERR.line(out._yellow("SANDBOX: local emulator, not Azure. Nothing here reaches Microsoft."))
    yield


def connection(common: Common, out: Output) -> Any:
    """Build operations.session.Connection from the options (starting the sandbox emulator if asked)."""
    from cypht_azure.operations.core.connect import connection as connect

    return connect(common.sign_in(), STDERR.line)


def renewal_ui(out: Output) -> Any:
    """How the renewal flow reports to this terminal: progress, plan steps, warnings."""
    from cypht_azure.operations.unattended.renewal import Ui

    return Ui(progress=out, on_record=out.record, warn=out.warn, prompt=STDERR.line)


def render_renewal(out: Output, result: Any, common: Common) -> None:
    """The deploy hooks' lines after a command's outcome; exit 8 when one failed (old secret kept)."""
    if not common.json and not out.quiet:
        for run_ in result.deploy_hooks:
            state = "ok" if run_["ok"] else "timed out" if run_["timed_out"] else f"FAILED (exit {run_['exit_code']})"
            out.note(f"  Deploy hook  {run_['name']}: {state}, {run_['seconds']} s")
    for warning in getattr(result, "warnings", None) or []:  # after the commit point: kept, reported, exit 1
        out.warn(warning)
    if result.deploy_hooks_error:
        from cypht_azure.errors import DeployHookFailed

        error = DeployHookFailed(result.deploy_hooks_error)
        out.error_line(str(error))
        raise typer.Exit(int(error.exit_code))
    if getattr(result, "warnings", None):
        raise typer.Exit(int(ExitCode.FAILED))
