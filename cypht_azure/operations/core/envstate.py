"""What Cypht's `.env` says about each provider block, and the updates that make it right."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cypht_azure import cypht, envdisk, envfile
from cypht_azure.errors import InputError, OperationFailed
from cypht_azure.secret import Secret

BLOCK_COMMENT = "# Outlook and Office365 OAuth (managed by cypht-azure)"
# Values shaped like the real ones, for checking an edit before anything exists in Graph.
_SAMPLE_ID = "00000000-0000-0000-0000-000000000000"
_SAMPLE_SECRET = Secret("Abc8Q~" + "x" * 34)
_SAMPLE_URI = "https://cypht.invalid/?page=home"
# The .env files this process has open (resolved once), by the path the command was given.
_OPEN: dict[Path, envdisk.EnvTarget] = {}
# The secret ID whose deploy hooks have not succeeded yet (written with the secret, removed once they
# have): the next run retries the hooks before it removes any old secret. Cypht ignores this key.
DEPLOY_PENDING = "CYPHT_AZURE_DEPLOY_PENDING"


def resolve_env_path(option: str | None) -> Path:
    """--env-file, else CYPHT_DOTENV (Cypht's own override), else ./.env."""
    if option:
        return Path(option)
    return Path(os.environ.get("CYPHT_DOTENV") or ".env")


@dataclass
class ProviderState:
    provider: str
    keys: cypht.ProviderKeys
    client_id: str | None
    secret: Secret | None
    secret_id: str | None
    client_uri: str | None
    missing: list[str] = field(default_factory=list)


def read_provider(doc: envfile.EnvDocument, provider: str) -> ProviderState:
    keys = cypht.provider_keys(provider)
    secret = doc.get(keys.client_secret)
    return ProviderState(
        provider=provider,
        keys=keys,
        client_id=doc.get(keys.client_id) or None,
        secret=Secret(secret) if secret else None,
        secret_id=(doc.get(keys.secret_id) or "").lower() or None,
        client_uri=doc.get(keys.client_uri) or None,
        # Cypht's env() falls back to its default for an empty value too: empty is as good as missing.
        missing=[k for k in keys.all() if k != keys.secret_id and not doc.get(k)],
    )


def read_providers(doc: envfile.EnvDocument, providers: list[str]) -> dict[str, ProviderState]:
    return {p: read_provider(doc, p) for p in providers}


def named_client_id(states: dict[str, ProviderState], env_path: Path) -> str | None:
    """The one client ID the provider blocks name, or an error if they disagree."""
    ids = {s.client_id.lower() for s in states.values() if s.client_id}
    if len(ids) > 1:
        detail = ", ".join(f"{s.keys.client_id}={s.client_id}" for s in states.values() if s.client_id)
        raise InputError(
            f"{env_path}: the provider blocks point at different apps ({detail}).",
            hint="Pass --app-id to choose the app to manage, or --provider to manage one block, "
                 "or make the blocks agree.",
        )
    return ids.pop() if ids else None


def held_secret_ids(doc: envfile.EnvDocument, client_id: str) -> set[str]:
    """Secret IDs that any provider block of this app holds: never removed."""
    states = read_providers(doc, list(cypht.PROVIDERS)).values()
    return {s.secret_id for s in states if s.secret_id and (s.client_id or "").lower() == client_id.lower()}


def blocks_using(doc: envfile.EnvDocument, client_id: str) -> list[str]:
    return [p for p, s in read_providers(doc, list(cypht.PROVIDERS)).items()
            if (s.client_id or "").lower() == client_id.lower()]


def secret_updates(providers: list[str], *, client_id: str, secret: Secret, key_id: str) -> dict[str, str | None]:
    """The keys that carry the app and its secret, per provider block."""
    updates: dict[str, str | None] = {}
    for provider in providers:
        keys = cypht.provider_keys(provider)
        updates[keys.client_id] = client_id
        updates[keys.client_secret] = secret.reveal()
        updates[keys.secret_id] = key_id
    return updates


def updates_for(
    doc: envfile.EnvDocument, providers: list[str], *, client_id: str, secret: Secret, key_id: str,
    redirect_uri: str, endpoints: cypht.SignInEndpoints | None = None,
) -> dict[str, str | None]:
    """Owned keys per provider: ID, secret, secret ID and URI always; endpoints when missing or when
    they cannot sign in the app's audience (endpoints the admin set that fit are kept), always when they
    are an emulator's for a rehearsal (`--emulator-endpoints`). Without `endpoints`: those of the default
    audience, Cypht's own."""
    updates: dict[str, str | None] = {}
    endpoints = endpoints or cypht.SignInEndpoints(cypht.DEFAULT_AUDIENCE, "login.microsoftonline.com", "")
    wanted = endpoints.wanted()
    for provider in providers:  # one provider's keys together, as in Cypht's .env.example
        keys = cypht.provider_keys(provider)
        updates.update(secret_updates([provider], client_id=client_id, secret=secret, key_id=key_id))
        updates[keys.client_uri] = redirect_uri
        for name, url in wanted.items():
            have = doc.get(keys.endpoint(name))
            if not have or endpoints.rehearsal_base or endpoints.problem(name, have):
                updates[keys.endpoint(name)] = url
    return updates


def endpoint_problems(doc: envfile.EnvDocument, provider: str,
                      endpoints: cypht.SignInEndpoints) -> list[tuple[str, str, str]]:
    """(key, value, why it cannot sign in the app's users) for each endpoint key of a block that does not fit."""
    keys = cypht.provider_keys(provider)
    found = []
    for name in cypht.DEFAULT_ENDPOINTS:
        # An empty or missing key means Cypht's Live default (env() falls back on an empty value).
        value = doc.get(keys.endpoint(name)) or cypht.DEFAULT_ENDPOINTS[name]
        problem = endpoints.problem(name, value)
        if problem:
            found.append((keys.endpoint(name), value, problem))
    return found


def changed_keys(doc: envfile.EnvDocument, updates: dict[str, str | None]) -> list[str]:
    return [k for k, v in updates.items() if doc.get(k) != v]


@contextmanager
def opened(path: Path) -> Iterator[envdisk.EnvTarget]:
    """The `.env` at `path`, resolved once for the whole command; `write_env(path, ...)` writes there."""
    with envdisk.open_target(path) as target:
        _OPEN[Path(path)] = target
        try:
            yield target
        finally:
            _OPEN.pop(Path(path), None)


def real_path(path: Path) -> Path:
    """The file `path` names: as resolved once by `opened()` during a command, else resolved now."""
    target = _OPEN.get(Path(path))
    return target.real if target is not None else Path(os.path.realpath(path))


def preflight(target: envdisk.EnvTarget, doc: envfile.EnvDocument, providers: list[str] | None = None) -> None:
    """Everything about `.env` that must hold before a secret is created (EnvFileError: exit 2).

    The disk checks (permissions, owner and group, ACLs, a bind mount), then the edit itself with
    values shaped like the real ones: symfony/dotenv (Cypht's loader, the authority on what the file
    means) and python-dotenv must both read every key back exactly.
    """
    target.preflight()
    for provider in providers or list(cypht.PROVIDERS):
        keys = cypht.provider_keys(provider)  # what a run keeps stays, what it renews gets a sample
        doc.updated(updates_for(doc, [provider], client_id=doc.get(keys.client_id) or _SAMPLE_ID,
                                secret=_SAMPLE_SECRET, key_id=_SAMPLE_ID,
                                redirect_uri=doc.get(keys.client_uri) or _SAMPLE_URI), block_comment=BLOCK_COMMENT)


def secrets_known(path: Path, *docs: envfile.EnvDocument | None) -> list[Secret]:
    """Every client secret value of `docs` and of `.env` as this command read it (old and new), and the
    sign-in secrets of this process: what a deploy hook's output is redacted of."""
    target = _OPEN.get(Path(path))
    found: list[Secret] = []
    for doc in (*docs, target.document if target is not None else None):
        if doc is None:
            continue
        found += [Secret(value) for provider in cypht.PROVIDERS
                  if (value := doc.get(cypht.provider_keys(provider).client_secret))]
    found += [Secret(value) for name in ("AZURE_CLIENT_SECRET", "CYPHT_AZURE_CLIENT_SECRET")
              if (value := os.environ.get(name))]
    return found


def recheck(path: Path) -> None:
    """Right before a secret is created: the disk checks of `preflight()` once more, on the `.env`
    this command opened (its mode, owner, ACLs or mount may have changed while Graph was called)."""
    target = _OPEN.get(Path(path))
    if target is not None:
        target.preflight()


def write_env(path: Path, text: str, *, updates: Mapping[str, str | None] | None = None,
              block_comment: str | None = BLOCK_COMMENT, on_committed: Callable[[], None] | None = None) -> list[str]:
    """Replace `.env` after Graph was changed: the commit point of a command.

    A failure now is exit 1 (a file that could not be written), not an input error, which would claim
    that nothing was changed. If another program changed the file since it was read under the lock,
    `updates` are applied to its new text, unless that program changed one of these very keys: then
    nothing is written. `on_committed()` runs the instant the file holds the new text; what fails after
    that (syncing its folder) is returned as warnings, never raised.
    """
    target = _OPEN.get(Path(path))
    try:
        if target is None or target.document is None:
            envdisk.write_atomic(path, text)
            if on_committed is not None:
                on_committed()
            return []
        base = target.document

        def rebase(current: envfile.EnvDocument) -> str:
            clash = sorted(k for k in (updates or {}) if current.get(k) != base.get(k))
            if updates is None or clash:
                raise envfile.EnvFileError(
                    "it was changed by another program while cypht-azure was working on it"
                    + (f", including {', '.join(clash)}" if clash else "") + "; it was not overwritten.",
                    path=path,
                    fix="Run again once nothing else is editing the file.",
                )
            return edited(current, updates, block_comment=block_comment).render()

        return target.commit(text, rebase=rebase, on_committed=on_committed)
    except envfile.EnvFileError as exc:
        raise OperationFailed(exc.message, hint=exc.hint) from None


def managed_block_keys(doc: envfile.EnvDocument) -> set[str]:
    """The keys assigned in the block under cypht-azure's comment: the lines provision appended."""
    lines = doc.text.splitlines()
    try:
        header = next(i for i, line in enumerate(lines) if line.strip() == BLOCK_COMMENT) + 1  # 1-based
    except StopIteration:
        return set()
    keys: set[str] = set()
    line = header + 1
    by_line = {a.line: a for a in doc.assignments()}
    while line in by_line:  # the block ends at the first line that is not an assignment
        keys.add(by_line[line].key)
        line = by_line[line].end_line + 1
    return keys


def without_orphan_header(doc: envfile.EnvDocument) -> envfile.EnvDocument:
    """Drop cypht-azure's comment when no assignment follows it any more (after deprovision), with the
    blank line that separated it, so the next provision does not leave a second header."""
    lines = doc.text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.strip() != BLOCK_COMMENT:
            continue
        if any(a.line == i + 2 for a in doc.assignments()):
            return doc
        start = i - 1 if i > 0 and not lines[i - 1].strip() else i
        return envfile.parse("".join(lines[:start] + lines[i + 1:]), doc.path)
    return doc


def edited(doc: envfile.EnvDocument, updates: Mapping[str, str | None], *,
           block_comment: str | None = BLOCK_COMMENT) -> envfile.EnvDocument:
    """`doc` with `updates` applied, and cypht-azure's comment dropped once it heads no key any more.
    Keys new to the file get the comment only if the file does not have it yet: never a second one."""
    if block_comment and any(line.strip() == block_comment for line in doc.text.splitlines()):
        block_comment = None
    return without_orphan_header(doc.updated(updates, block_comment=block_comment))
