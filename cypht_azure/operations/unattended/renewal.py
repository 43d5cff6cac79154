"""The renewal lifecycle of provision and rotate-secret, as one flow (certbot's `handle_renewal_request`):

    read the installation record -> layer it under the options given now -> check hooks and webhooks
    -> lock .env, plan, apply (operations.core.runner) -> after the commit point: the record, the
    audit line, the webhook events.

The CLI parses the options into a request, calls `renew` (or `renew_all`), and renders what comes back.
Nothing after the plan is applied changes the run's outcome: a record, log or webhook that cannot be
written becomes a warning.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cypht_azure import envdisk, envfile
from cypht_azure.durations import parse_duration
from cypht_azure.errors import CyphtAzureError, ExitCode, InputError, OperationFailed
from cypht_azure.operations.core.connect import SignIn, connection, records_folder
from cypht_azure.operations.core.provision import MAX_SECRET_LIFETIME, ProvisionRequest, ProvisionResult
from cypht_azure.operations.core.rotate import RotateRequest, RotateResult
from cypht_azure.operations.core.runner import OnRecord, run_provision, run_rotate
from cypht_azure.operations.core.secrets import INSTALLATION_KEY
from cypht_azure.operations.core.session import Progress
from cypht_azure.operations.unattended import hooks, record, runlog
from cypht_azure.operations.unattended import notify as webhooks
from cypht_azure.secret import Secret

Request = ProvisionRequest | RotateRequest
Result = ProvisionResult | RotateResult
Warn = Callable[[str], None]

# The operator's own credentials, which no log line or webhook body may ever hold.
CREDENTIAL_VARIABLES = ("AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_PASSWORD")


@dataclass
class Renewal:
    """One run of provision or rotate-secret on one `.env`, as the operator gave it."""

    command: str                     # "provision" | "rotate-secret"
    request: Request                 # built from the options given (defaults included)
    sign_in: SignIn                  # its user_set names every option set on the command line or environment
    deploy_hook: list[str] = field(default_factory=list)
    notify: list[str] = field(default_factory=list)
    secret_lifetime: str = "365d"
    audience: str | None = None      # provision only

    @property
    def env_file(self) -> Path:
        return self.request.env_file

    @property
    def user_set(self) -> frozenset[str]:
        return self.sign_in.user_set


@dataclass
class Ui:
    progress: Progress
    on_record: OnRecord
    warn: Warn
    prompt: Callable[[str], None] | None = None


def exit_code_of(exc: BaseException) -> int:
    """The exit code the CLI gives this failure (cli.common.run), for the audit line and the webhook."""
    if isinstance(exc, CyphtAzureError):
        return int(exc.exit_code)
    if isinstance(exc, KeyboardInterrupt):
        return int(ExitCode.INTERRUPTED)
    if isinstance(exc, (envfile.EnvFileError, ValueError)):
        return int(ExitCode.INVALID_INPUT)
    return int(ExitCode.FAILED)


def renew(job: Renewal, ui: Ui) -> Result:
    """Run one renewal from record to report; raises what ended it (after logging and notifying it)."""
    urls: list[str] = []
    ca_file = job.sign_in.ca_file
    before = _env_now(job.env_file)  # read once for the leak checks and an older version's settings
    secrets = _secrets_of(before)
    try:
        rec = record.load(job.env_file, folder=records_folder(job.sign_in))
        given, retire = _legacy(job, ui.warn, before)
        layered = job.sign_in.layered(rec)
        ca_file = layered.ca_file
        chosen = record.layer(given, job.user_set, rec)
        urls = webhooks.validate_urls(chosen["notify"] or [])
        skip = bool(getattr(job.request, "skip_hooks", False))
        if skip and job.deploy_hook:
            raise InputError("--skip-deploy-hooks and --deploy-hook contradict each other.", hint="Give one of them.")
        folder = hooks.default_hooks_dir()
        # What runs is resolved now, to absolute files; the record keeps those, so a later run from another
        # folder (the schedule) runs exactly what the operator chose.
        found = () if skip else hooks.validate(hooks.collect(chosen["deploy_hook"] or [], folder), folder)
        if "deploy_hook" in given and job.deploy_hook:
            given["deploy_hook"] = [h.command for h in found if h.source == "flag"]
        request = _layered_request(job, chosen, found, retire)
        if isinstance(request, ProvisionRequest):
            result: Result = run_provision(request, lambda: connection(layered, ui.prompt), ui.progress,
                                           ui.on_record)
        else:
            result = run_rotate(request, lambda: connection(layered, ui.prompt), ui.progress, ui.on_record)
    except BaseException as exc:
        code = exit_code_of(exc)
        if not getattr(job.request, "dry_run", False) and not isinstance(exc, record.UnsafeRecord):
            _remember_run(job, code, ui.warn, settings=None, env=_env_now(job.env_file))
        _finish(job, ui.warn, outcome=None, code=code, error=str(getattr(exc, "message", exc)), urls=urls,
                ca_file=ca_file, secrets=secrets)
        raise
    outcome = result.to_json()
    # A warning after the commit point (an fsync that failed, a backup left) is exit 1: the run is done
    # and nothing is undone, but the operator must look (docs/guarantees.md, "Commit points").
    code = (int(ExitCode.DEPLOY_HOOK_FAILED) if outcome.get("deploy_hooks_error")
            else int(ExitCode.FAILED) if outcome.get("warnings") else 0)
    after = _env_now(job.env_file)  # read once: the installation ID and the secret it holds now
    if not result.dry_run:
        _remember_run(job, code, ui.warn, settings=record.relevant(given, job.user_set), result=outcome, env=after)
    _finish(job, ui.warn, outcome=outcome, code=code, error=outcome.get("deploy_hooks_error"), urls=urls,
            ca_file=ca_file, secrets=[*secrets, *_secrets_of(after)])
    return result


def _legacy(job: Renewal, warn: Warn, doc: envfile.EnvDocument | None) -> tuple[dict[str, Any], frozenset[str]]:
    """The renewal options given, and the `CYPHT_AZURE_*` keys of an older version to drop from `.env`:
    those whose option the operator gave now (so the record holds them from this run on)."""
    given: dict[str, Any] = {**job.sign_in.given(), "deploy_hook": job.deploy_hook, "notify": job.notify,
                             "secret_lifetime": job.secret_lifetime}
    if job.audience is not None:
        given["audience"] = job.audience
    if doc is None:
        return given, frozenset()  # the run reads .env again under its lock and says what is wrong
    found = record.legacy_settings(doc)
    if not found:
        return given, frozenset()
    retire = frozenset(key for key in found if record.LEGACY_KEYS[key] in job.user_set)
    left = sorted(set(found) - retire)
    if left:
        warn(record.legacy_warning(job.env_file, left))
    return given, retire


def _layered_request(job: Renewal, chosen: dict[str, Any], found: tuple[hooks.Hook, ...],
                     retire: frozenset[str]) -> Request:
    changes: dict[str, Any] = {"deploy_hooks": found, "retire_keys": retire}
    if "secret_lifetime" not in job.user_set and chosen.get("secret_lifetime") != job.secret_lifetime:
        changes["secret_lifetime"] = parse_duration(chosen["secret_lifetime"], option="--secret-lifetime (recorded)",
                                                    maximum=MAX_SECRET_LIFETIME, maximum_text="2 years")
    if isinstance(job.request, ProvisionRequest) and chosen.get("audience"):
        changes["audience"] = chosen["audience"]
    return dataclasses.replace(job.request, **changes)


def _remember_run(job: Renewal, code: int, warn: Warn, *, settings: dict[str, Any] | None,
                  env: envfile.EnvDocument | None, result: dict[str, Any] | None = None) -> None:
    """Keep what the operator set and what this run found in the installation record. A failed run only
    updates an existing record's last run: a setting that did not work is not kept."""
    folder = records_folder(job.sign_in)
    try:
        if settings is None and record.load(job.env_file, folder=folder) is None:
            return
        result = result or {}
        record.remember(job.env_file, settings=settings or {}, installation_id=(env.get(INSTALLATION_KEY) or None) if env is not None else None,
                        client_id=result.get("client_id"),
                        secret_expires=result.get("expires") or result.get("secret_expires"),
                        last_run=record.last_run(job.command, code), folder=folder)
    except (OSError, CyphtAzureError) as exc:
        warn(f"the installation record of {job.env_file} could not be written: {getattr(exc, 'message', exc)}")


def _env_now(env_file: Path) -> envfile.EnvDocument | None:
    """`.env` as it is now, None when it cannot be read (the run itself says why)."""
    try:
        return envdisk.load(env_file)
    except (envfile.EnvFileError, OSError):
        return None


def _secrets_of(doc: envfile.EnvDocument | None) -> list[Secret]:
    """What the leak checks look for: the operator's credential and the secrets `.env` holds."""
    found = [Secret(v) for name in CREDENTIAL_VARIABLES if (v := os.environ.get(name))]
    if doc is None:
        return found
    keys = sorted(doc.keys())
    return found + [Secret(v) for key in keys if key.endswith("_CLIENT_SECRET") and (v := doc.get(key))]


def _finish(job: Renewal, warn: Warn, *, outcome: dict[str, Any] | None, code: int, error: str | None,
            urls: Sequence[str], ca_file: str | None, secrets: Sequence[Secret]) -> None:
    done = runlog.finish(job.command, job.env_file, outcome=outcome, exit_code=code, error=error,
                         dry_run=bool(getattr(job.request, "dry_run", False)), notify_urls=urls,
                         ca_file=ca_file, secrets=secrets)
    for warning in done.warnings:
        warn(warning)


# --- every recorded installation (certbot renew) -----------------------------------------------------

@dataclass
class Item:
    env_file: str
    result: Result | None = None
    exit_code: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"env_file": self.env_file, "exit_code": self.exit_code, "error": self.error,
                "result": self.result.to_json() if self.result is not None else None}


@dataclass
class RenewAll:
    items: list[Item]

    @property
    def failed(self) -> list[Item]:
        return [i for i in self.items if i.exit_code != 0]

    def error(self) -> OperationFailed | None:
        if not self.failed:
            return None
        return OperationFailed(
            f"{len(self.failed)} of {len(self.items)} recorded installation(s) failed: "
            + "; ".join(f"{i.env_file} (exit {i.exit_code})" for i in self.failed) + ".",
            hint="Run rotate-secret --env-file F for each of them to see what happened, fix it, then run again.")

    def to_json(self) -> dict[str, Any]:
        return {"installations": [i.to_json() for i in self.items], "failed": len(self.failed),
                "succeeded": len(self.items) - len(self.failed)}


def renew_all(job_for: Callable[[Path], Renewal], ui: Ui, sign_in: SignIn) -> RenewAll:
    """`rotate-secret --all`: each recorded installation in turn, each in its own try; one report. With
    --sandbox, the sandbox's installations only: a real `.env` never gets a sandbox secret."""
    items: list[Item] = []
    for rec in record.all_records(records_folder(sign_in)):
        if isinstance(rec, CyphtAzureError):
            items.append(Item(str(getattr(rec, "path", "") or "(a record)"), exit_code=int(rec.exit_code),
                              error=rec.message))
            continue
        item = Item(rec.env_file)
        try:
            item.result = renew(job_for(Path(rec.env_file)), ui)
            if item.result.to_json().get("deploy_hooks_error"):
                item.exit_code = int(ExitCode.DEPLOY_HOOK_FAILED)
                item.error = item.result.to_json()["deploy_hooks_error"]
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            item.exit_code = exit_code_of(exc)
            item.error = str(getattr(exc, "message", exc))
        items.append(item)
    return RenewAll(items)


# --- settings an older version left in .env -> the record (`record migrate`) -------------------------

@dataclass
class Migration:
    env_file: str
    record: str
    moved: dict[str, str]            # .env key -> value as it was (notify URLs redacted)
    settings: dict[str, Any]         # what the record holds for them now
    dry_run: bool

    @property
    def changed(self) -> bool:
        return bool(self.moved) and not self.dry_run

    def to_json(self) -> dict[str, Any]:
        return {"env_file": self.env_file, "record": self.record, "moved": self.moved,
                "settings": record.Record(self.env_file, self.settings).shown(), "dry_run": self.dry_run,
                "changed": self.changed}


def migrate(env_file: Path, *, dry_run: bool = False) -> Migration:
    """Copy the `CYPHT_AZURE_*` settings an older version wrote into `.env` to the installation record,
    then remove them from `.env` (under its lock): one step, shown first by --dry-run."""
    from cypht_azure.operations.core import envstate
    from cypht_azure.operations.core.runner import env_read

    with env_read(env_file, writes=not dry_run) as doc:
        found = record.legacy_settings(doc)
        settings = record.from_legacy(found)
        if "notify" in settings:
            webhooks.validate_urls(settings["notify"])
        shown = {k: (" ".join(webhooks.redacted(u) for u in v.split()) if k == record.SETTINGS["notify"] else v)
                 for k, v in found.items()}
        path = record.path_for(env_file)
        if not found or dry_run:
            return Migration(str(env_file), str(path), shown, settings, dry_run)
        rec = record.load(env_file)
        kept = {k: v for k, v in settings.items() if k not in (rec.settings if rec else {})}
        record.remember(env_file, settings=kept, installation_id=doc.get(INSTALLATION_KEY) or None)
        updates: dict[str, str | None] = dict.fromkeys(found)
        envstate.write_env(env_file, envstate.edited(doc, updates, block_comment=None).render(), updates=updates,
                           block_comment=None)
        return Migration(str(env_file), str(path), shown, {**settings, **(rec.settings if rec else {})}, dry_run)
