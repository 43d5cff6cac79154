"""The steps a command's plan is made of, and what running them gave.

A plan is an ordered tuple of frozen steps, computed with no I/O from the request, the `.env` read
under the lock and what Graph returned (`plan_provision`, `plan_rotate`, ...). `apply.py` runs it;
`--dry-run`, the human text, `--json` and the audit trail all render these same objects.

At most one step of a plan is its commit point (`commit=True`): before it, what the run created is
undone on failure or Ctrl-C; after it, nothing is undone, only reported.

Adding a step: a frozen dataclass here with `summary()` (imperative, shown in plans and as done) and
a handler in `apply.py` registered with `@handles(NewStep)`.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar

from cypht_azure.durations import describe
from cypht_azure.operations.unattended.hooks import Hook, HookRun
from cypht_azure.secret import Secret


class Fill(enum.Enum):
    """A `.env` value known only once an earlier step ran (the secret is never part of a plan)."""

    CLIENT_ID = "the new registration's client ID"
    SECRET = "the new client secret"
    SECRET_ID = "the new client secret's ID"


EnvValue = str | Secret | Fill | None


@dataclass(frozen=True, kw_only=True)
class Step:
    commit: bool = False  # the command's commit point
    # Runs at the same time as the step after it: it needs only what earlier steps made, and the next
    # step does not need it (apply() waits for both before going on).
    alongside_next: ClassVar[bool] = False

    @property
    def name(self) -> str:
        return type(self).__name__

    def summary(self) -> str:
        raise NotImplementedError

    def in_flight(self) -> str | None:
        """What this step's request may have done when its answer never came (an interruption, a lost
        connection), and what happens to it; None when it changes nothing."""
        return None

    def to_json(self) -> dict[str, Any]:
        return {"step": self.name, "summary": self.summary(), "commit_point": self.commit}


@dataclass(frozen=True)
class CreateRegistration(Step):
    display_name: str
    unique_name: str
    body: Mapping[str, Any]

    def summary(self) -> str:
        return f"Create the app registration {self.display_name!r} (uniqueName {self.unique_name})"

    def in_flight(self) -> str:
        return (f"the app registration {self.unique_name} may have been created; the next `provision` finds it "
                "by that uniqueName and goes on (it never makes a second one)")


@dataclass(frozen=True)
class PatchRegistration(Step):
    client_id: str
    fields: tuple[str, ...]
    patch: Mapping[str, Any]

    def summary(self) -> str:
        return f"Update the registration {self.client_id}: {', '.join(self.fields)}"

    def in_flight(self) -> str:
        return f"the registration {self.client_id} may have been updated; the next `provision` checks it again"


@dataclass(frozen=True)
class CreateServicePrincipal(Step):
    """The app's enterprise application in its home tenant, as the Entra admin center makes one with every
    registration: without it the token endpoint answers AADSTS7000229, so no secret check proves anything."""

    client_id: str | Fill
    alongside_next: ClassVar[bool] = True  # the secret that follows needs only the app's ids: one round trip less

    def summary(self) -> str:
        which = "the new registration" if isinstance(self.client_id, Fill) else self.client_id
        return f"Create the service principal (enterprise application) of {which} in the tenant"

    def in_flight(self) -> str:
        return "the app's service principal may have been created; it is kept (every registration should have one)"


@dataclass(frozen=True)
class DeleteServicePrincipal(Step):
    client_id: str

    def summary(self) -> str:
        return f"Delete the service principal (enterprise application) of {self.client_id}"

    def in_flight(self) -> str:
        return f"the service principal of {self.client_id} may have been deleted; the next run finishes it"


@dataclass(frozen=True)
class RemoveSecret(Step):
    key_id: str
    reason: str

    def summary(self) -> str:
        return f"Remove the client secret {self.key_id} ({self.reason})"

    def in_flight(self) -> str:
        return f"the client secret {self.key_id} may have been removed"


@dataclass(frozen=True)
class AddSecret(Step):
    display_name: str
    end: str
    lifetime: dt.timedelta

    def summary(self) -> str:
        return f"Add a client secret valid for {describe(self.lifetime)} ({self.display_name!r})"

    def in_flight(self) -> str:
        return (f"Entra may have created a client secret named {self.display_name!r} (its answer never came); "
                "it is named for this .env, and the next run removes it")


@dataclass(frozen=True)
class VerifySecret(Step):
    timeout: float

    def summary(self) -> str:
        return f"Check that Entra accepts the new client secret (waiting up to {self.timeout:.0f} s)"


@dataclass(frozen=True)
class WriteEnv(Step):
    path: str
    values: Mapping[str, EnvValue]  # None removes the key
    switch_from: str | None = None  # the client ID .env named before, when this switches it

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.values)

    def summary(self) -> str:
        set_keys = [k for k, v in self.values.items() if v is not None]
        gone = [k for k, v in self.values.items() if v is None]
        parts = []
        if set_keys:
            parts.append(f"Write {', '.join(set_keys)}")
        if gone:
            parts.append(f"{'remove' if parts else 'Remove'} {', '.join(gone)}")
        text = f"{' and '.join(parts)} in {self.path}"
        if self.switch_from:
            text += f", switching its client ID from {self.switch_from}"
        return text

    def to_json(self) -> dict[str, Any]:
        return super().to_json() | {"keys": list(self.keys), "switch_from": self.switch_from}


@dataclass(frozen=True)
class RunDeployHooks(Step):
    """The deploy hooks, after `.env` holds the new secret and before any old secret is removed. A
    failure stops the plan there: the old secrets stay, `.env` keeps its pending mark for a retry."""

    hooks: tuple[Hook, ...]
    timeout: float
    old_key_ids: tuple[str, ...] = ()
    key_id: str | None = None    # retrying an earlier run's hooks: the secret .env holds; else the new one
    expires: str | None = None
    retry: bool = False
    skip: bool = False           # --skip-deploy-hooks on a retry: give the failed hooks up, run none

    def summary(self) -> str:
        names = ", ".join(h.name for h in self.hooks) or "none configured"
        if self.retry and self.skip:
            return "Give up the deploy hooks that did not succeed last time (--skip-deploy-hooks)"
        if self.retry:
            return f"Run again the deploy hooks that did not succeed last time ({names})"
        return f"Run the deploy hooks ({names})"

    def to_json(self) -> dict[str, Any]:
        return super().to_json() | {"hooks": [h.name for h in self.hooks], "retry": self.retry}


@dataclass(frozen=True)
class DeleteRegistration(Step):
    object_id: str
    client_id: str
    display_name: str | None

    def summary(self) -> str:
        return f"Delete (restorable for 30 days) the app registration {self.display_name!r} ({self.client_id})"

    def in_flight(self) -> str:
        return (f"the registration {self.client_id} may have been deleted; the next `deprovision` finishes the job, "
                f"`restore --app-id {self.client_id}` brings it back")


@dataclass(frozen=True)
class PurgeRegistration(Step):
    object_id: str
    client_id: str

    def summary(self) -> str:
        return f"Permanently delete the app registration {self.client_id} from Deleted applications"

    def in_flight(self) -> str:
        return f"the deleted registration {self.client_id} may have been purged"


@dataclass(frozen=True)
class RestoreRegistration(Step):
    object_id: str
    client_id: str
    display_name: str | None

    def summary(self) -> str:
        return f"Restore the deleted app registration {self.display_name!r} ({self.client_id})"

    def in_flight(self) -> str:
        return f"the registration {self.client_id} may have been restored"


@dataclass(frozen=True)
class Plan:
    command: str
    steps: tuple[Step, ...]
    notes: tuple[str, ...] = ()  # what was decided without a step (kept secrets, left-alone secrets)

    @property
    def commit_point(self) -> Step | None:
        return next((s for s in self.steps if s.commit), None)

    def of(self, kind: type[Step]) -> list[Any]:
        return [s for s in self.steps if isinstance(s, kind)]


PLANNED, DONE, UNDONE, FAILED, NOT_RUN = "planned", "done", "undone", "failed", "not run"


@dataclass
class StepRecord:
    step: Step
    status: str = PLANNED
    detail: str | None = None  # what running it gave (an ID), or why it failed
    started: bool = False  # its handler ran (its request may be in flight when the run is stopped)

    def line(self) -> str:
        return self.step.summary() + (f": {self.detail}" if self.detail else "")

    def to_json(self) -> dict[str, Any]:
        return self.step.to_json() | {"status": self.status, "detail": self.detail}


@dataclass
class Applied:
    """What running a plan gave, step by step (starting from what was read before planning)."""

    object_id: str | None = None
    client_id: str | None = None
    created: bool = False
    secret: Secret | None = None
    key_id: str | None = None
    expires: str | None = None
    verified: bool | None = None
    removed: list[str] = field(default_factory=list)
    updated_fields: list[str] = field(default_factory=list)
    keys_written: list[str] = field(default_factory=list)
    deleted: bool = False
    purged: bool = False
    restored: dict[str, Any] | None = None
    committed: bool = False
    # What went wrong after the commit point without undoing it (the folder could not be synced): shown
    # as warnings, exit 1. While there are any, no old secret is removed: the next run removes it.
    warnings: list[str] = field(default_factory=list)
    hook_runs: list[HookRun] = field(default_factory=list)
    records: list[StepRecord] = field(default_factory=list)

    def done(self) -> list[StepRecord]:
        return [r for r in self.records if r.status == DONE]


def planned(plan: Plan) -> list[StepRecord]:
    return [StepRecord(s) for s in plan.steps]


class Outcome:
    """What a command did, one shape for text, `--json` and the audit log (a mixin for the result
    dataclasses): its step records and the notes planning made."""

    notes: list[str]
    steps: list[StepRecord]

    @property
    def changed(self) -> bool:
        return changed(self.steps)

    @property
    def actions(self) -> list[str]:
        return [*self.notes, *(r.line() for r in self.steps)]

    def to_json(self) -> dict[str, Any]:
        # The records are rendered by their own to_json: a WriteEnv's values may hold a Secret (a held secret
        # copied into another block), which must never be deep-copied.
        data: dict[str, Any] = asdict(replace(self, steps=[]))  # type: ignore[type-var,call-overload]  # every Outcome is a dataclass
        data.pop("notes")
        data["steps"] = [r.to_json() for r in self.steps]
        return data | {"changed": self.changed, "actions": self.actions}


def changed(records: list[StepRecord]) -> bool:
    """Whether anything changed: a step completed and was not undone (VerifySecret changes nothing)."""
    return any(r.status == DONE and not isinstance(r.step, VerifySecret) for r in records)
