"""Run a plan's steps in order, with one commit point and an undo stack before it.

    for each step: run its handler; the handler pushes an undo for what it created
    at the commit point (the `.env` rename; deprovision's DELETE): drop the undo stack
    on failure or Ctrl-C before it: run the undo stack (last first); after it: undo nothing

The commit is recorded by the handler itself (`ctx.commit()`), the instant it is made: for
`WriteEnv` the moment the rename returned (or the in-place write was read back), before the folder
is synced, before the step's line is printed, before anything else. From then on no exception of any
kind undoes anything; what fails after it (an fsync, a later step) is reported with the state.

Either way the error says what this run left behind (done, undone, not undone, and what a request
that was still in flight may have made). A handler is an async function registered with
`@handles(StepType)`; it returns a short detail for the record (an ID) and stores what later steps
need in `ctx.applied`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cypht_azure import cypht, envfile, interrupts
from cypht_azure.checkpoints import checkpoint
from cypht_azure.errors import CyphtAzureError, DeployHookFailed, ExitCode, InputError, OperationFailed
from cypht_azure.graph import GraphError, GraphUnavailable
from cypht_azure.operations.core import envstate
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
    """Ctrl-C, SIGTERM or SIGHUP (cypht_azure.interrupts): exit 130, 143 or 129."""

    exit_code = ExitCode.INTERRUPTED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = ExitCode(interrupts.exit_code())


class SkipStep(Exception):  # not an error: the step is left for the next run, on purpose
    """Raised by a handler that leaves its step for the next run (the record says why)."""


class RegistrationTaken(Exception):
    """Graph refused to create the registration: another one, live or deleted, holds its uniqueName.
    Raised only when nothing was changed; the caller reads the registration and plans again."""

    def __init__(self, unique_name: str) -> None:
        super().__init__(unique_name)
        self.unique_name = unique_name


ADOPT_WINDOW = dt.timedelta(minutes=10)


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

    def commit(self, record: StepRecord) -> None:
        """The commit point is reached: from this instant nothing this run made is undone."""
        self.undo.clear()
        self.applied.committed = True
        record.status = DONE

    def tell(self, record: StepRecord) -> None:
        """Show a record (on_record); output can never change what is applied, so nothing it raises counts."""
        try:
            self.on_record(record)
        except Exception as exc:  # the output's problem, not the run's
            log.info("could not show the step %s: %s", record.step.name, type(exc).__name__)


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
    interrupts.report_state(lambda: left_behind(applied, [], interrupted=True))
    for batch in _batches(applied.records):
        try:
            await _run(batch, ctx)
        except RegistrationTaken:
            if any(r.status == DONE for r in applied.records) or ctx.undo:
                raise
            for record in batch:
                record.status = NOT_RUN  # nothing ran: the plan is made again, not reported as failed
            raise
        except BaseException as exc:
            for record in batch:
                if record.status != DONE and record.started:
                    record.status = FAILED
                    ctx.tell(record)
            with interrupts.deferred(deliver=False):  # a second Ctrl-C does not cut the undo short
                undo_failures = await _run_undo(ctx)
            raise _explain(exc, applied, undo_failures) from None
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
        record.started = True
        try:
            record.detail = await HANDLERS[type(record.step)](record.step, ctx, record)
        except SkipStep as skipped:
            record.started, record.detail = False, str(skipped)
            ctx.tell(record)
            return
        if record.step.commit and not ctx.applied.committed:
            ctx.commit(record)  # a commit step whose handler did not record it itself
        record.status = DONE
        ctx.tell(record)

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
        ctx.tell(record)
    return failures


def left_behind(applied: Applied, undo_failures: list[str], *, interrupted: bool = False) -> str:
    """What the run leaves: steps done and kept, undone, not undone; with ``interrupted`` (or a lost
    connection) also what a request still in flight may have made, and after the commit point what
    was not done. Empty when nothing could have changed."""
    done = [r.line() for r in applied.records if r.status == DONE and not isinstance(r.step, VerifySecret)]
    undone = [r.step.summary() for r in applied.records if r.status == UNDONE]
    in_flight = [note for r in applied.records
                 if interrupted and r.started and r.status not in (DONE, UNDONE) and (note := r.step.in_flight())]
    parts = []
    if done:
        parts.append("Done and kept: " + "; ".join(done) + ".")
    if undone:
        parts.append("Undone: " + "; ".join(undone) + ".")
    if undo_failures:
        parts.append("Could not undo (the next run removes it): " + "; ".join(undo_failures) + ".")
    if in_flight:
        parts.append("A request was in flight: " + "; ".join(in_flight) + ".")
    if applied.committed:
        left = [r.step.summary() for r in applied.records if r.status != DONE and not r.step.commit
                and applied.records.index(r) > _commit_index(applied)]
        if left:
            parts.append("Not done (running the command again finishes it): " + "; ".join(left) + ".")
    elif done or undone or undo_failures or in_flight:
        parts.append(".env was not changed.")
    return " ".join(parts)


def _commit_index(applied: Applied) -> int:
    return next((i for i, r in enumerate(applied.records) if r.step.commit), len(applied.records))


def _explain(exc: BaseException, applied: Applied, undo_failures: list[str]) -> BaseException:
    """The error to show: the cause, then what this run left behind."""
    stopped = isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError))
    state = left_behind(applied, undo_failures, interrupted=stopped or isinstance(exc, GraphUnavailable))
    if stopped:
        return Interrupted(f"{interrupts.name()}. " + (state or "Nothing was changed."))
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
    """POST /applications with the uniqueName: a registration holding it is never changed (Graph refuses
    the create). A refusal after a lost answer may be our own create: adopted only if it is a fresh,
    secretless registration of ours, else RegistrationTaken as for any refusal."""
    graph, applied = ctx.session.graph, ctx.applied
    started = dt.datetime.now(dt.timezone.utc)
    app, after_lost = await graph.create_application({**step.body, "uniqueName": step.unique_name})
    if app is None and after_lost:
        found = await graph.get_application(unique_name=step.unique_name, fresh_object=True)
        if found is not None and _our_lost_create(found, started):
            app = found
    if app is None:
        raise RegistrationTaken(step.unique_name)
    applied.object_id, applied.client_id, applied.created = str(app["id"]), str(app["appId"]), True
    checkpoint("app-ready")
    return f"client ID {applied.client_id}"


def _our_lost_create(app: dict[str, Any], started: dt.datetime) -> bool:
    from cypht_azure.operations.core.session import parse_time

    created = parse_time(app.get("createdDateTime"))
    return (cypht.TAG in (app.get("tags") or []) and not app.get("passwordCredentials")
            and created is not None and abs(created - started) <= ADOPT_WINDOW)


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
    if ctx.applied.committed and ctx.applied.warnings:
        # .env's write is not known to be on disk: a crash could bring back the file that holds this secret.
        raise SkipStep("kept: the write of .env was not confirmed on disk; the next run removes it")
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
    with interrupts.deferred():  # a signal now acts once the write and the record of its commit are done
        problems = envstate.write_env(ctx.env_path, new_doc.render(), updates=updates, block_comment=block_comment,
                                      on_committed=(lambda: ctx.commit(record)) if step.commit else None)
    ctx.doc = new_doc
    applied.keys_written = list(step.keys)
    for problem in problems:
        kept = (" The previous secret is kept, so that Cypht signs in whichever file the disk keeps; the next run "
                "removes it. Check the disk (dmesg)." if step.commit and applied.secret is not None else "")
        applied.warnings.append(f"{ctx.env_path} holds the new content, but {problem}{kept}")
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
    report = await asyncio.to_thread(hooks.run_all, steps[0].hooks, facts, timeout=steps[0].timeout,
                                     redact=envstate.secrets_known(env_path))
    applied.hook_runs = report.runs
    return None if report.ok else f"The deploy hook {report.failed[0].describe()} (dry run: nothing else was changed)."


@handles(RunDeployHooks)
async def _run_deploy_hooks(step: RunDeployHooks, ctx: Context, record: StepRecord) -> str | None:
    applied = ctx.applied
    key_id, expires = step.key_id or applied.key_id, step.expires or applied.expires
    assert applied.client_id and key_id
    if step.retry and not step.hooks and not step.skip:
        raise DeployHookFailed(
            f"An earlier run wrote the secret {key_id} into {ctx.env_path}, but its deploy hooks did not succeed, "
            "and no deploy hook is configured for this run: the old secret was kept, because a running Cypht "
            "may still use it. Run again with the deploy hooks (--deploy-hook or the hooks folder "
            f"{hooks.default_hooks_dir()}), or with --skip-deploy-hooks to remove the old secret without them.")
    report = hooks.HookReport()
    if not step.skip:
        facts = hooks.HookEnv(ctx.env_path, applied.client_id, key_id, step.old_key_ids, expires or "")
        redact = [*([applied.secret] if applied.secret is not None else []),
                  *envstate.secrets_known(ctx.env_path, ctx.doc),
                  *([ctx.session.connection.client_secret] if ctx.session.connection.client_secret else [])]
        for hook in step.hooks:  # one at a time: a run that is stopped (Ctrl-C, SIGTERM) starts no further hook
            await asyncio.sleep(0)  # a stop that came meanwhile is raised here, before the hook is started
            ran = await asyncio.to_thread(hooks.run_all, (hook,), facts, timeout=step.timeout, redact=redact)
            report.runs += ran.runs
            applied.hook_runs = report.runs
            if not ran.ok:
                break
    if not report.ok:
        failed = report.failed[0]
        output = failed.output.strip()[-800:]
        raise DeployHookFailed(
            f"The deploy hook {failed.describe()}. {ctx.env_path} holds the new secret; the old secret was kept "
            "because a running Cypht may still use it." + (hooks.output_block(output) if output else ""))
    if ctx.doc.get(envstate.DEPLOY_PENDING) is not None:
        clear: dict[str, str | None] = {envstate.DEPLOY_PENDING: None}
        ctx.doc = ctx.doc.updated(clear)
        for problem in envstate.write_env(ctx.env_path, ctx.doc.render(), updates=clear, block_comment=None):
            applied.warnings.append(f"{ctx.env_path} holds the new content, but {problem}")
    if step.skip:
        return "skipped (--skip-deploy-hooks)"
    return f"{len(report.runs)} hook(s) succeeded" if report.runs else None


@handles(DeleteRegistration)
async def _delete(step: DeleteRegistration, ctx: Context, record: StepRecord) -> str | None:
    await ctx.session.graph.delete_application(step.object_id)
    if step.commit:
        ctx.commit(record)
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
    if step.commit:
        ctx.commit(record)
    if restored is None:  # an earlier attempt restored it; its answer was lost
        restored = await ctx.session.graph.get_application(app_id=step.client_id, fresh_object=True)
    ctx.applied.restored = restored
    return None
