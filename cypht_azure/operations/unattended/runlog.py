"""After a run of `provision` or `rotate-secret`: the audit line, the last-run record and the webhook
events, all from the same outcome document that `--json` prints (or from the error that ended the run).

Nothing here may change the run's outcome: a log that cannot be written or a webhook that does not
answer becomes a warning, never a different exit code.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cypht_azure import cypht, envdisk, envfile
from cypht_azure.operations.core import envstate
from cypht_azure.operations.unattended import audit, hooks, notify
from cypht_azure.secret import Secret, held_secrets

log = logging.getLogger("cypht_azure.runlog")


@dataclass
class Finished:
    deliveries: list[notify.Delivery] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    audited: bool = False


def client_id_in(env_file: Path) -> str | None:
    """The app a `.env` names, for the record of a run that failed before it read Graph."""
    try:
        doc = envdisk.load(env_file)
    except (envfile.EnvFileError, OSError):
        return None
    ids = {s.client_id for s in envstate.read_providers(doc, list(cypht.PROVIDERS)).values() if s.client_id}
    return ids.pop() if len(ids) == 1 else None


def entry_for(command: str, env_file: Path, outcome: Mapping[str, Any] | None, exit_code: int,
              error: str | None, app: str | None) -> audit.Entry:
    outcome = outcome or {}
    added = [outcome["new_key_id"]] if outcome.get("new_key_id") else (
        [outcome["secret_key_id"]] if outcome.get("secret_created") and outcome.get("secret_key_id") else [])
    return audit.Entry(
        command=command, exit_code=exit_code, env_file=os.path.abspath(env_file),
        app=outcome.get("client_id") or app, added=added,
        removed=list(outcome.get("removed_key_ids") or outcome.get("removed_secret_ids") or []),
        hooks=list(outcome.get("deploy_hooks") or []), changed=bool(outcome.get("changed")), error=error,
    )


def known_secrets(given: Sequence[Secret], env_file: Path) -> list[Secret]:
    """Every secret the audit line must not hold: those given, every secret this run held (the one .env
    held before, the new one, a sandbox's admin secret), the ones .env holds now, and the sign-in's."""
    found = [*given, *held_secrets()]
    with suppress(envfile.EnvFileError, OSError):
        doc = envdisk.load(env_file)
        found += [s.secret for s in envstate.read_providers(doc, list(cypht.PROVIDERS)).values() if s.secret]
    if os.environ.get("AZURE_CLIENT_SECRET"):
        found.append(Secret(os.environ["AZURE_CLIENT_SECRET"]))
    return [s for s in dict.fromkeys(found) if s.reveal()]


def tried_to_change(outcome: Mapping[str, Any] | None, exit_code: int) -> bool:
    if exit_code != 0:
        return True
    return bool(outcome and (outcome.get("changed") or outcome.get("deploy_hooks")))


def finish(command: str, env_file: Path, *, outcome: Mapping[str, Any] | None, exit_code: int,
           error: str | None = None, app: str | None = None, dry_run: bool = False,
           notify_urls: Sequence[str] = (), ca_file: str | None = None, secrets: Sequence[Secret] = (),
           now: dt.datetime | None = None) -> Finished:
    """Record the run and send its events. Dry runs change nothing and are neither logged nor sent."""
    finished = Finished()
    if dry_run:
        return finished
    if error:
        error = error.split(hooks.OUTPUT_MARK)[0]  # a hook's output stays on the terminal
    if app is None and not (outcome or {}).get("client_id"):
        app = client_id_in(env_file)
    try:
        if tried_to_change(outcome, exit_code):
            audit.write(entry_for(command, env_file, outcome, exit_code, error, app),
                        secrets=known_secrets(secrets, env_file))
            finished.audited = True
        else:
            audit.record_last_run(Path(os.path.abspath(env_file)), command=command, exit_code=exit_code)
    except audit.LockBusy as exc:
        finished.audited = tried_to_change(outcome, exit_code)
        finished.warnings.append(f"the audit log was not fully updated: {exc}")
    except (OSError, audit.SecretInLogLine) as exc:
        finished.warnings.append(f"the audit log could not be written: {exc}")
    if notify_urls:
        outcome = outcome or {}
        rotated = bool(outcome.get("new_key_id") or outcome.get("secret_created"))
        expires = (outcome.get("expires") or outcome.get("secret_expires")) if rotated else (
            outcome.get("previous_expires") or outcome.get("secret_expires"))
        events = notify.events_for(
            command=command, env_file=str(env_file), exit_code=exit_code, app=outcome.get("client_id") or app,
            rotated=rotated, expires=expires, message=error, now=now or dt.datetime.now(dt.timezone.utc))
        try:
            finished.deliveries = notify.send(notify_urls, events, ca_file=ca_file)
        except Exception as exc:  # an unreadable --ca-file, say: the run's outcome stands
            finished.warnings.append(f"the webhook events could not be sent: {type(exc).__name__}")
        for d in finished.deliveries:
            if not d.ok:
                finished.warnings.append(f"the {d.event} event did not reach {d.url}: {d.detail}")
    return finished
