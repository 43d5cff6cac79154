"""The local half of every command: validate, lock `.env`, then run the Graph half in one event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

from cypht_azure import envfile
from cypht_azure.operations.provision import Plan, ProvisionRequest, ProvisionResult, prepare, provision
from cypht_azure.operations.session import Connection, Progress, open_session


def run_provision(
    request: ProvisionRequest, make_connection: Callable[[Plan], Connection], progress: Progress
) -> ProvisionResult:
    plan = prepare(request)  # every input checked before anything else happens
    path = request.env_file
    doc = envfile.load(path)  # refuses a file Cypht's loader could not parse, with the line number
    if not request.dry_run:
        envfile.check_writable(path)
    lock: Any = nullcontext() if request.dry_run else envfile.locked(path)
    with lock:
        if not request.dry_run:
            doc = envfile.load(path)  # re-read under the lock: another run may have just written it
        conn = make_connection(plan)

        async def body() -> ProvisionResult:
            async with open_session(conn, progress) as session:
                return await provision(session, plan, doc, path)

        return asyncio.run(body())
