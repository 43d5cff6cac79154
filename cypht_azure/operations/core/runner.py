"""Every command in the same plain order: lock `.env` -> read it under the lock -> choose the app
-> sign in -> the command's own read, plan and apply (`provision()`, `rotate()`, ...).

Everything that can be checked without the network is checked before signing in (inputs, the
`.env` text, which app it names), and `.env` is locked, when the command may write it, before
anything is created in Graph; the document planned from is the one read under that lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from cypht_azure import envdisk, envfile
from cypht_azure.checkpoints import checkpoint
from cypht_azure.errors import CyphtAzureError, OperationFailed
from cypht_azure.operations.core import envstate
from cypht_azure.operations.core.apps import choose_target
from cypht_azure.operations.core.deprovision import (
    DeprovisionRequest,
    DeprovisionResult,
    RestoreResult,
    deprovision,
    restore,
)
from cypht_azure.operations.core.provision import ProvisionRequest, ProvisionResult, prepare, provision
from cypht_azure.operations.core.rotate import RotateRequest, RotateResult, check_switch, rotate
from cypht_azure.operations.core.session import Connection, Progress, Session, open_session
from cypht_azure.operations.core.steps import StepRecord
from cypht_azure.operations.unattended import record

T = TypeVar("T")
MakeConnection = Callable[[], Connection]
OnRecord = Callable[[StepRecord], None]


def lock_wait(verify_timeout: float = 120.0) -> float:
    """How long to wait for another run's lock: longer than the longest run holds it (sign-in and
    Graph calls with their retries, plus the wait for a new secret)."""
    return max(verify_timeout, 120.0) + 180.0


@contextmanager
def env_read(path: Path, *, writes: bool, providers: list[str] | None = None,
             wait: float | None = None, dry_run: bool = False) -> Iterator[envfile.EnvDocument]:
    """The `.env` document, read under the lock when the command may write it. A dry run of a command
    that writes runs the same pre-checks as the real run (without taking the lock): what would refuse
    the real run refuses the rehearsal too."""
    with envstate.opened(path) as target:  # resolved once: every later step goes through its folder
        if not writes:
            doc = target.read()  # refuses a file Cypht's loader could not parse, with the line number
            if dry_run:
                envstate.preflight(target, doc, providers)
            yield doc
            return
        with _lock(target, path, wait or lock_wait()):  # first repairs what an interrupted run left
            doc = target.read()  # the document every decision is made from
            envstate.preflight(target, doc, providers)
            checkpoint("env-locked")
            yield doc


@contextmanager
def _lock(target: Any, path: Path, wait: float) -> Iterator[None]:
    with ExitStack() as stack:
        try:
            stack.enter_context(target.locked(wait))
        except envdisk.LockTimeout:
            # Losing the race is not bad input: another run is working on it (exit 1, nothing changed).
            raise OperationFailed(f"{path}: another cypht-azure run has held its lock for more than {wait:.0f} s; "
                                  "nothing was changed.", hint="Wait for the other run to finish, then run again.",
                                  ) from None
        yield


def signed_in(make_connection: MakeConnection, progress: Progress,
              work: Callable[[Session], Awaitable[T]]) -> T:
    conn = make_connection()

    async def main() -> T:
        async with open_session(conn, progress) as session:
            checkpoint("signed-in")
            return await work(session)

    return asyncio.run(main())


def run_provision(request: ProvisionRequest, make_connection: MakeConnection, progress: Progress,
                  on_record: OnRecord) -> ProvisionResult:
    prepare(request)  # every input checked before anything else happens
    with env_read(request.env_file, writes=not request.dry_run, providers=request.providers,
                  wait=lock_wait(request.verify_timeout), dry_run=request.dry_run) as doc:
        # Provider blocks naming different apps: refused before signing in.
        envstate.named_client_id(envstate.read_providers(doc, request.providers), request.env_file)
        return signed_in(make_connection, progress, lambda s: provision(s, request, doc, on_record))


def run_rotate(request: RotateRequest, make_connection: MakeConnection, progress: Progress,
               on_record: OnRecord) -> RotateResult:
    with env_read(request.env_file, writes=not request.dry_run, wait=lock_wait(request.verify_timeout),
                  dry_run=request.dry_run) as doc:
        target = choose_target(doc, request.env_file, app_id=request.app_id, url=request.url)
        check_switch(request, doc)  # --app-id naming another app than .env: refused before signing in
        return signed_in(make_connection, progress, lambda s: rotate(s, request, target, doc, on_record))


def run_deprovision(
    request: DeprovisionRequest, make_connection: MakeConnection, progress: Progress,
    confirm: Callable[[str], bool] | None, on_record: OnRecord, records: Path | None = None,
) -> DeprovisionResult:
    """`records`: the folder of installation records (a sandbox's own; None for the operator's)."""
    with env_read(request.env_file, writes=not request.dry_run, dry_run=request.dry_run) as doc:
        target = choose_target(doc, request.env_file, app_id=request.app_id, url=request.url)
        result = signed_in(make_connection, progress,
                           lambda s: deprovision(s, request, target, doc, confirm, on_record))
    if result.deleted and not request.dry_run:
        with suppress(OSError, CyphtAzureError):  # after the commit point: never a different outcome
            record.forget(request.env_file, records)  # nothing left to renew (certbot delete drops the renewal conf)
    return result


def run_restore(app_id: str, make_connection: MakeConnection, progress: Progress, on_record: OnRecord) -> RestoreResult:
    return signed_in(make_connection, progress, lambda s: restore(s, app_id, on_record))
