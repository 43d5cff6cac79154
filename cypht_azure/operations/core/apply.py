"""Run a plan's steps in order, with one commit point and an undo stack before it.

    for each step: run its handler; the handler pushes an undo for what it created
    at the commit point (the `.env` rename; deprovision's DELETE): drop the undo stack
    on failure or Ctrl-C before it: run the undo stack (last first); after it: undo nothing

Either way the error says what this run left behind (done, undone, not undone). A handler is an
async function registered with `@handles(StepType)`; it returns a short detail for the record
(an ID) and stores what later steps need in `ctx.applied`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cypht_azure import cypht, envfile
from cypht_azure.errors import CyphtAzureError, DeployHookFailed, ExitCode, InputError, OperationFailed
from cypht_azure.graph import GraphError, GraphUnavailable
from cypht_azure.operations.core import envstate
from cypht_azure.operations.core.checkpoints import checkpoint
from cypht_azure.operations.core.session import (
    Session,
    ensure_service_principal,
    translate_graph_error,
    verify_secret,
)
from cypht_azure.operations.core.steps import (
    DONE,
    FAILED,
    NOT_RUN,
    UNDONE,
    AddSecret,
    Applied,
    CreateRegistration,
    CreateServicePrincipal,
    DeleteRegistration,
    DeleteServicePrincipal,
    Fill,
    PatchRegistration,
    Plan,
    PurgeRegistration,
    RemoveSecret,
    RestoreRegistration,
    RunDeployHooks,
    Step,
    StepRecord,
    VerifySecret,
    WriteEnv,
)
from cypht_azure.operations.unattended import hooks
from cypht_azure.secret import Secret

log = logging.getLogger("cypht_azure.apply")

Undo = Callable[[], Awaitable[None]]


class Interrupted(CyphtAzureError):
    exit_code = ExitCode.INTERRUPTED


@dataclass
class Context:
    session: Session
    doc: envfile.EnvDocument
    env_path: Path
    applied: Applied
    undo: list[tuple[StepRecord, Undo]] = field(default_factory=list)
    on_record: Callable[[StepRecord], None] = lambda record: None

    def push_undo(self, record: StepRecord, undo: Undo) -> None:
        self.undo.append((record, undo))


Handler = Callable[[Any, Context, StepRecord], Awaitable[str | None]]
HANDLERS: dict[type[Step], Handler] = {}
S = TypeVar("S", bound=Step)


def handles(kind: type[S]) -> Callable[[Callable[[S, Context, StepRecord], Awaitable[str | None]]], Handler]:
    def register(func: Callable[[S, Context, StepRecord], Awaitable[str | None]]) -> Handler:
        HANDLERS[kind] = func
        return func
    return register


async def apply(plan: Plan, ctx: Context) -> Applied:
    applied = ctx.applied
    applied.records = [StepRecord(s, NOT_RUN) for s in plan.steps]
    for batch in _batches(applied.records):
        try:
            await _run(batch, ctx)
        except BaseException as exc:
            for record in batch:
                if record.status != DONE:
                    record.status = FAILED
                    ctx.on_record(record)
            undo_failures = await _run_undo(ctx)
            raise _explain(exc, applied, undo_failures) from None
        for record in batch:
            if record.step.commit:
                ctx.undo.clear()  # the commit point: from here on nothing is undone
                applied.committed = True
    return applied


def _batches(records: list[StepRecord]) -> Iterator[list[StepRecord]]:
    """The records in order, a step marked `alongside_next` together with the one after it."""
    batch: list[StepRecord] = []
    for record in records:
        batch.append(record)
        if not record.step.alongside_next:
            yield batch
            batch = []
    if batch:
        yield batch


async def _run(batch: list[StepRecord], ctx: Context) -> None:
    """Run the batch's steps at the same time; both finish (or fail) before the first failure is raised."""
    async def one(record: StepRecord) -> None:
        record.detail = await HANDLERS[type(record.step)](record.step, ctx, record)
        record.status = DONE
        ctx.on_record(record)

    if len(batch) == 1:
        await one(batch[0])
        return
    for outcome in await asyncio.gather(*(one(record) for record in batch), return_exceptions=True):
        if isinstance(outcome, BaseException):
            raise outcome


async def _run_undo(ctx: Context) -> list[str]:
    failures: list[str] = []
    while ctx.undo:
        record, undo = ctx.undo.pop()
        try:
            await undo()
        except BaseException as exc:  # keep undoing the rest; report this one
            log.info("undo of %s failed: %s", record.step.name, type(exc).__name__)
            failures.append(record.line())
            continue
        record.status = UNDONE
        ctx.on_record(record)
    return failures


def left_behind(applied: Applied, undo_failures: list[str]) -> str:
    done = [r.line() for r in applied.records if r.status == DONE and not isinstance(r.step, VerifySecret)]
    undone = [r.step.summary() for r in applied.records if r.status == UNDONE]
    parts = []
    if done:
        parts.append("Done and kept: " + "; ".join(done) + ".")
    if undone:
        parts.append("Undone: " + "; ".join(undone) + ".")
    if undo_failures:
        parts.append("Could not undo (the next run removes it): " + "; ".join(undo_failures) + ".")
    if not applied.committed:
        parts.append(".env was not changed.")
    return " ".join(parts) if (done or undone or undo_failures) else ""


def _explain(exc: BaseException, applied: Applied, undo_failures: list[str]) -> BaseException:
    """The error to show: the cause, then what this run left behind."""
    state = left_behind(applied, undo_failures)
    if isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError)):
        return Interrupted("Interrupted. " + (state or "Nothing was changed."))
    if not state:
        return exc
    error: BaseException
    if isinstance(exc, GraphError):
        error = translate_graph_error(exc)
    elif isinstance(exc, GraphUnavailable):
        error = OperationFailed(str(exc))
    elif isinstance(exc, envfile.EnvFileError):
        # Graph was changed: a file problem now is a failure (exit 1), not "invalid input, nothing changed".
        error = OperationFailed(exc.message, hint=exc.hint)
    else:
        error = exc
    if isinstance(error, CyphtAzureError):
        if isinstance(error, InputError) and applied.done():
            error = OperationFailed(error.message, hint=error.hint)
        # What this run left behind belongs to the sentence, before a hook's output (kept last).
        head, mark, output = error.message.partition(hooks.OUTPUT_MARK)
        error.message = f"{head.rstrip('.')}. {state}" + mark + output
    return error


# ---- handlers -------------------------------------------------------------------------------


@handles(CreateRegistration)
async def _create(step: CreateRegistration, ctx: Context, record: StepRecord) -> str | None:
    graph, applied = ctx.session.graph, ctx.applied
    app, after_lost = await graph.upsert_application(step.unique_name, dict(step.body))
    if app is None and after_lost:
        # Our first attempt created it and its answer was lost; the retry found it and answered 204.
        app = await graph.get_application(unique_name=step.unique_name, fresh_object=True)
    if app is None:
        # Someone created a registration for this URL between our read and our write (Graph answered
        # 204: updated). Never adopt it silently.
        found = await graph.get_application(unique_name=step.unique_name)
        tags = (found or {}).get("tags") or []
        raise OperationFailed(
            f"A registration for this URL ({step.unique_name}) appeared while this run was planning"
            + ("" if cypht.TAG in tags else ", not made by cypht-azure") + ".",
            hint="Run the command again: it then plans against that registration.",
        )
    applied.object_id, applied.client_id, applied.created = str(app["id"]), str(app["appId"]), True
    checkpoint("app-ready")
    return f"client ID {applied.client_id}"


@handles(PatchRegistration)
async def _patch(step: PatchRegistration, ctx: Context, record: StepRecord) -> str | None:
    assert ctx.applied.object_id
    await ctx.session.graph.update_application(ctx.applied.object_id, dict(step.patch))
    ctx.applied.updated_fields = list(step.fields)
    checkpoint("app-ready")
    return None


@handles(CreateServicePrincipal)
async def _create_sp(step: CreateServicePrincipal, ctx: Context, record: StepRecord) -> str | None:
    # Kept if a later step fails: every registration should have one (the admin center makes it too).
    client_id = ctx.applied.client_id if isinstance(step.client_id, Fill) else step.client_id
    assert client_id
    created = await ensure_service_principal(ctx.session, client_id, fresh_object=ctx.applied.created)
    return None if created else "it already existed"


@handles(DeleteServicePrincipal)
async def _delete_sp(step: DeleteServicePrincipal, ctx: Context, record: StepRecord) -> str | None:
    deleted = await ctx.session.graph.delete_service_principal(step.client_id)
    return None if deleted else "none left (deleted with the registration)"


@handles(RemoveSecret)
async def _remove_secret(step: RemoveSecret, ctx: Context, record: StepRecord) -> str | None:
    assert ctx.applied.object_id
    removed = await ctx.session.graph.remove_password(ctx.applied.object_id, step.key_id)
    ctx.applied.removed.append(step.key_id)
    return None if removed else "already gone"


@handles(AddSecret)
async def _add_secret(step: AddSecret, ctx: Context, record: StepRecord) -> str | None:
    applied, graph = ctx.applied, ctx.session.graph
    object_id = applied.object_id
    assert object_id
    envstate.recheck(ctx.env_path)  # the file may have changed while Graph was called
    created = await graph.add_password(object_id, display_name=step.display_name, end=step.end,
                                       fresh_object=applied.created)
    applied.secret = Secret(str(created.pop("secretText")))
    key_id = applied.key_id = str(created["keyId"]).lower()
    applied.expires = str(created.get("endDateTime") or step.end)

    async def take_back() -> None:
        await graph.remove_password(object_id, key_id)
        applied.secret = None

    ctx.push_undo(record, take_back)
    checkpoint("secret-added")
    return f"secret ID {key_id}, expires {applied.expires}"


@handles(VerifySecret)
async def _verify(step: VerifySecret, ctx: Context, record: StepRecord) -> str | None:
    applied = ctx.applied
    assert applied.client_id and applied.secret is not None
    ctx.session.progress.step("Waiting until Entra accepts the new client secret")
    ok, last = await verify_secret(ctx.session, applied.client_id, applied.secret, timeout=step.timeout)
    if not ok:
        applied.verified = False
        if applied.committed:
            raise OperationFailed(
                f"The new client secret is stored in {ctx.env_path}, but Entra did not accept it within "
                f"{step.timeout:.0f} s ({last}).",
                hint="New secrets usually work within a minute. Check later with "
                     "`cypht-azure status --verify-secret`; running the command again is safe.",
            )
        raise OperationFailed(
            f"Entra did not accept the new client secret within {step.timeout:.0f} s ({last}).",
            hint="Run it again later, or with a longer --verify-timeout.",
        )
    applied.verified = True
    checkpoint("secret-verified")
    return None


@handles(WriteEnv)
async def _write_env(step: WriteEnv, ctx: Context, record: StepRecord) -> str | None:
    applied = ctx.applied
    fills: dict[Fill, str | None] = {
        Fill.CLIENT_ID: applied.client_id,
        Fill.SECRET: applied.secret.reveal() if applied.secret is not None else None,
        Fill.SECRET_ID: applied.key_id,
    }
    updates: dict[str, str | None] = {}
    for key, value in step.values.items():
        if isinstance(value, Fill):
            filled = fills[value]
            assert filled is not None, f"{value} not known when writing .env"
            updates[key] = filled
        elif isinstance(value, Secret):
            updates[key] = value.reveal()
        else:
            updates[key] = value
    block_comment = envstate.BLOCK_COMMENT if any(v is not None for v in updates.values()) else None
    new_doc = envstate.edited(ctx.doc, updates, block_comment=block_comment)
    envstate.write_env(ctx.env_path, new_doc.render(), updates=updates, block_comment=block_comment)
    ctx.doc = new_doc
    applied.keys_written = list(step.keys)
    checkpoint("env-written")
    return None


async def rehearse_deploy_hooks(plan: Plan, env_path: Path, client_id: str, key_id: str | None,
                                expires: str | None, applied: Applied) -> str | None:
    """`--dry-run --run-deploy-hooks`: run the plan's hooks against the secret `.env` holds now, nothing
    else. Returns why one failed, or None."""
    steps = plan.of(RunDeployHooks)
    if not steps or not key_id:
        return None
    facts = hooks.HookEnv(env_path, client_id, key_id, steps[0].old_key_ids, expires or "")
    report = await asyncio.to_thread(hooks.run_all, steps[0].hooks, facts, timeout=steps[0].timeout)
    applied.hook_runs = report.runs
    return None if report.ok else f"The deploy hook {report.failed[0].describe()} (dry run: nothing else was changed)."


@handles(RunDeployHooks)
async def _run_deploy_hooks(step: RunDeployHooks, ctx: Context, record: StepRecord) -> str | None:
    applied = ctx.applied
    key_id, expires = step.key_id or applied.key_id, step.expires or applied.expires
    assert applied.client_id and key_id
    facts = hooks.HookEnv(ctx.env_path, applied.client_id, key_id, step.old_key_ids, expires or "")
    redact = [applied.secret] if applied.secret is not None else []
    report = await asyncio.to_thread(hooks.run_all, step.hooks, facts, timeout=step.timeout, redact=redact)
    applied.hook_runs = report.runs
    if not report.ok:
        failed = report.failed[0]
        output = failed.output.strip()[-800:]
        raise DeployHookFailed(
            f"The deploy hook {failed.describe()}. {ctx.env_path} holds the new secret; the old secret was kept "
            "because a running Cypht may still use it." + (hooks.output_block(output) if output else ""))
    if ctx.doc.get(envstate.DEPLOY_PENDING) is not None:
        clear: dict[str, str | None] = {envstate.DEPLOY_PENDING: None}
        ctx.doc = ctx.doc.updated(clear)
        envstate.write_env(ctx.env_path, ctx.doc.render(), updates=clear, block_comment=None)
    return f"{len(report.runs)} hook(s) succeeded" if report.runs else None


@handles(DeleteRegistration)
async def _delete(step: DeleteRegistration, ctx: Context, record: StepRecord) -> str | None:
    await ctx.session.graph.delete_application(step.object_id)
    ctx.applied.deleted = True
    checkpoint("app-deleted")
    return None


@handles(PurgeRegistration)
async def _purge(step: PurgeRegistration, ctx: Context, record: StepRecord) -> str | None:
    await ctx.session.graph.purge_deleted(step.object_id, fresh_object=True)  # the deleted item may lag
    ctx.applied.purged = True
    return None


@handles(RestoreRegistration)
async def _restore(step: RestoreRegistration, ctx: Context, record: StepRecord) -> str | None:
    restored = await ctx.session.graph.restore_deleted(step.object_id)
    if restored is None:  # an earlier attempt restored it; its answer was lost
        restored = await ctx.session.graph.get_application(app_id=step.client_id, fresh_object=True)
    ctx.applied.restored = restored
    return None
