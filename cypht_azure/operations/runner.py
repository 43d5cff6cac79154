"""The local half of every command: validate, read and lock `.env`, then run the Graph half.

Everything that can be checked without the network is checked before signing in, and `.env`
is locked (when the command may write it) before anything is created in Graph.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any, TypeVar

from cypht_azure import envfile
from cypht_azure.operations import envstate
from cypht_azure.operations.apps import Target, choose_target
from cypht_azure.operations.checkpoints import checkpoint
from cypht_azure.operations.deprovision import (
    DeprovisionRequest,
    DeprovisionResult,
    RestoreResult,
    deprovision,
    restore,
)
from cypht_azure.operations.provision import ProvisionRequest, ProvisionResult, prepare, provision
from cypht_azure.operations.rotate import RotateRequest, RotateResult, rotate
from cypht_azure.operations.session import Connection, Progress, Session, open_session
from cypht_azure.operations.status import StatusAllResult, StatusRequest, StatusResult, status, status_all

T = TypeVar("T")
MakeConnection = Callable[[], Connection]


def _with_env(
    path: Path, *, writes: bool, make_connection: MakeConnection, progress: Progress,
    body: Callable[[Session, envfile.EnvDocument], Awaitable[T]],
    before: Callable[[envfile.EnvDocument], None] | None = None,
    providers: list[str] | None = None,
) -> T:
    with envstate.opened(path) as target:  # resolved once: every later step goes through its folder
        lock: Any = target.locked() if writes else nullcontext()
        with lock:  # first repairs what an interrupted run left (a bind-mounted file's backup)
            doc = target.read()  # refuses a file Cypht's loader could not parse, with the line number
            if before is not None:
                before(doc)
            if writes:
                envstate.preflight(target, doc, providers)
                checkpoint("env-locked")
            conn = make_connection()

            async def main() -> T:
                async with open_session(conn, progress) as session:
                    checkpoint("signed-in")
                    return await body(session, doc)

            return asyncio.run(main())


def run_provision(request: ProvisionRequest, make_connection: MakeConnection, progress: Progress) -> ProvisionResult:
    plan = prepare(request)  # every input checked before anything else happens

    def before(doc: envfile.EnvDocument) -> None:  # provider blocks naming different apps: refuse offline
        envstate.named_client_id(envstate.read_providers(doc, request.providers), request.env_file)

    return _with_env(request.env_file, writes=not request.dry_run, make_connection=make_connection,
                     progress=progress, before=before, body=lambda s, doc: provision(s, plan, doc, request.env_file),
                     providers=request.providers)


def run_rotate(request: RotateRequest, make_connection: MakeConnection, progress: Progress) -> RotateResult:
    target: list[Target] = []
    return _with_env(
        request.env_file, writes=not request.dry_run, make_connection=make_connection, progress=progress,
        before=lambda doc: target.append(choose_target(doc, request.env_file, app_id=request.app_id, url=request.url)),
        body=lambda s, doc: rotate(s, request, target[0], doc),
    )


def run_status(request: StatusRequest, make_connection: MakeConnection, progress: Progress) -> StatusResult:
    target: list[Target] = []
    return _with_env(
        request.env_file, writes=False, make_connection=make_connection, progress=progress,
        before=lambda doc: target.append(choose_target(doc, request.env_file, app_id=request.app_id, url=request.url,
                                                       report_only=True)),
        body=lambda s, doc: status(s, request, target[0], doc),
    )


def run_status_all(make_connection: MakeConnection, progress: Progress) -> StatusAllResult:
    conn = make_connection()

    async def main() -> StatusAllResult:
        async with open_session(conn, progress) as session:
            return await status_all(session)

    return asyncio.run(main())


def run_deprovision(
    request: DeprovisionRequest, make_connection: MakeConnection, progress: Progress,
    confirm: Callable[[str], bool] | None,
) -> DeprovisionResult:
    target: list[Target] = []
    return _with_env(
        request.env_file, writes=not request.dry_run, make_connection=make_connection, progress=progress,
        before=lambda doc: target.append(choose_target(doc, request.env_file, app_id=request.app_id, url=request.url)),
        body=lambda s, doc: deprovision(s, request, target[0], doc, confirm),
    )


def run_restore(app_id: str, make_connection: MakeConnection, progress: Progress) -> RestoreResult:
    conn = make_connection()

    async def main() -> RestoreResult:
        async with open_session(conn, progress) as session:
            return await restore(session, app_id)

    return asyncio.run(main())
