"""The installation record: what a later run of an installation reuses, kept by the operator.

certbot keeps a lineage's settings in `/etc/letsencrypt/renewal/NAME.conf`, root's file, and layers
them under the command line on `certbot renew`. cypht-azure does the same for each Cypht `.env`:

    root:    /etc/cypht-azure/installations/NAME.json
    others:  $XDG_CONFIG_HOME/cypht-azure/installations/NAME.json (~/.config/...)
    CYPHT_AZURE_RECORD_DIR overrides the folder (tests, several operators on one account).

NAME is derived from the `.env`'s absolute path (a readable slug and a hash of the path), so
`rotate-secret --env-file F` finds it with nothing else given. The record holds only what the
operator set on the command line or in the environment (tenant, cloud, endpoints, CA file, audience,
notify URLs, deploy hooks, secret lifetime: certbot's `relevant_values`), the `.env` path and its
installation ID, and what the last run found (client ID, expiry, exit code). Never a credential.

`.env` belongs to the web server user, who must not decide where the operator's credential goes, so
nothing in it is a setting any more: `CYPHT_AZURE_*` settings older versions wrote there are named in
a warning and never used (`legacy_settings`), until `record migrate` moves them here.

A record is read only when it and every folder above it are owned by root or the running user and
writable by no one else (sudo's and cron's rule); it is written atomically, never through a symlink.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import pwd
import re
import secrets
import stat
from collections.abc import Collection, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cypht_azure import cypht
from cypht_azure.envdisk.fileio import write_all
from cypht_azure.errors import InputError
from cypht_azure.operations.unattended import toolfiles

RECORD_DIR_ENV = "CYPHT_AZURE_RECORD_DIR"
VERSION = 1
SUFFIX = ".json"
FILE_MODE = 0o600   # notify URLs often carry a token in their path
DIR_MODE = 0o700

# What a record may hold: option name -> the `CYPHT_AZURE_*` key an older version wrote into `.env`.
SETTINGS: dict[str, str] = {
    "tenant": "CYPHT_AZURE_TENANT",
    "cloud": "CYPHT_AZURE_CLOUD",
    "authority_host": "CYPHT_AZURE_AUTHORITY_HOST",
    "graph_url": "CYPHT_AZURE_GRAPH_URL",
    "ca_file": "CYPHT_AZURE_CA_FILE",
    "audience": "CYPHT_AZURE_AUDIENCE",
    "notify": "CYPHT_AZURE_NOTIFY",
    "deploy_hook": "",        # never in `.env`
    "secret_lifetime": "",    # never in `.env`
}
LIST_SETTINGS = frozenset({"notify", "deploy_hook"})
LEGACY_KEYS: dict[str, str] = {key: name for name, key in SETTINGS.items() if key}
CLOUDS = ("public", "usgov", "china")


class UnsafeRecord(InputError):
    """A record (or a folder above it) that someone other than the operator could have written."""


@dataclass
class Record:
    env_file: str
    settings: dict[str, Any] = field(default_factory=dict)   # option name -> str | list[str]
    installation_id: str | None = None
    client_id: str | None = None
    secret_expires: str | None = None
    last_run: dict[str, Any] | None = None                   # command, time, exit_code
    path: Path | None = None                                  # where it was read from

    def get(self, name: str) -> Any:
        return self.settings.get(name)

    def to_json(self) -> dict[str, Any]:
        return {"env_file": self.env_file, "record": str(self.path) if self.path else None,
                "installation_id": self.installation_id, "client_id": self.client_id,
                "secret_expires": self.secret_expires, "last_run": self.last_run, "settings": self.shown()}

    def shown(self) -> dict[str, Any]:
        """The settings as status shows them: a webhook URL's path is often its password."""
        from cypht_azure.operations.unattended.notify import redacted

        return {k: ([redacted(u) for u in v] if k == "notify" else v) for k, v in sorted(self.settings.items())}

    def document(self) -> dict[str, Any]:
        """The file's contents."""
        return {"version": VERSION, "env_file": self.env_file, "installation_id": self.installation_id,
                "settings": dict(sorted(self.settings.items())),
                "state": {"client_id": self.client_id, "secret_expires": self.secret_expires,
                          "last_run": self.last_run}}


# --- where -----------------------------------------------------------------------------------------

def records_dir(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    if environ.get(RECORD_DIR_ENV):
        return Path(os.path.abspath(environ[RECORD_DIR_ENV]))
    if os.geteuid() == 0:
        return Path("/etc/cypht-azure/installations")
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME") or Path.home()) / ".config")
    return Path(os.path.abspath(base)) / "cypht-azure" / "installations"


def env_key(env_file: Path) -> str:
    """The `.env` as records know it: absolute and normalised, symlinks kept (the path the operator gave)."""
    return os.path.abspath(os.fspath(env_file))


def name_for(env_file: Path) -> str:
    """`var-www-cypht-env-1a2b3c4d5e`: readable, unique per path, safe in a file, unit or cron name."""
    key = env_key(env_file)
    slug = re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-")[-48:].strip("-") or "env"
    return f"{slug}-{hashlib.sha256(key.encode('utf-8', 'surrogateescape')).hexdigest()[:10]}"


def path_for(env_file: Path, folder: Path | None = None) -> Path:
    return (folder or records_dir()) / (name_for(env_file) + SUFFIX)


# --- trust -----------------------------------------------------------------------------------------

def _trusted_owner(uid: int) -> bool:
    return uid in (0, os.geteuid())


def check_folders(folder: Path) -> None:
    """Refuse `folder` unless it and every folder above it are owned by root or this user and writable
    by no one else. A root-owned sticky folder (/tmp) counts as safe: no one else can replace our entries."""
    real = Path(os.path.realpath(folder))
    for part in [real, *real.parents]:
        try:
            st = os.stat(part)
        except FileNotFoundError:
            continue
        if toolfiles.trust_problem(st, part):  # cron's and sudo's rule, the one the tool's own folders follow
            raise UnsafeRecord(
                f"The installation record folder {folder} is not safe: {part} is "
                f"{_describe(st)}; another user could change what this run trusts.",
                hint=f"Make {part} owned by root (or by you) and writable by its owner only "
                     f"(chown root: {part}; chmod go-w {part}), or set {RECORD_DIR_ENV} to a folder that is.")


def _describe(st: os.stat_result) -> str:
    try:
        owner = f"{pwd.getpwuid(st.st_uid).pw_name} (uid {st.st_uid})"
    except KeyError:
        owner = f"uid {st.st_uid}"
    return f"owned by {owner}, mode {stat.S_IMODE(st.st_mode):04o}"


def _check_file(fd: int, path: Path) -> None:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or not _trusted_owner(st.st_uid) or st.st_mode & 0o022:
        raise UnsafeRecord(
            f"The installation record {path} is not safe: {_describe(st)}; another user could have written it.",
            hint=f"Check its contents, then: chown root: {path}; chmod 600 {path} (or remove it and run "
                 "provision again with the options you want recorded).")


# --- read ------------------------------------------------------------------------------------------

def load(env_file: Path, folder: Path | None = None) -> Record | None:
    """The record of the `.env` at `env_file`, None when there is none yet; UnsafeRecord if untrusted."""
    return read(path_for(env_file, folder))


def read(path: Path) -> Record | None:
    check_folders(path.parent)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError:
        if os.path.islink(path):
            raise UnsafeRecord(f"The installation record {path} is a symbolic link; it is not read.",
                               hint="Replace it with the file itself, owned by root (or by you), mode 0600.") from None
        raise
    try:
        _check_file(fd, path)
        with os.fdopen(os.dup(fd), "rb") as f:
            raw = f.read(1 << 20)
    finally:
        os.close(fd)
    try:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise ValueError("not a version 1 record")
        state = data.get("state") or {}
        return Record(env_file=str(data["env_file"]), settings=_typed(data.get("settings") or {}, path),
                      installation_id=data.get("installation_id"), client_id=state.get("client_id"),
                      secret_expires=state.get("secret_expires"), last_run=state.get("last_run"), path=path)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"The installation record {path} cannot be read: {exc}.",
                         hint="Fix it by hand (it is JSON, see docs/ci.md), or remove it and run provision "
                              "again with the options you want recorded.") from None


def _typed(values: Mapping[str, Any], path: Path) -> dict[str, Any]:
    typed: dict[str, Any] = {}
    for name, value in values.items():
        if name not in SETTINGS:
            raise ValueError(f"unknown setting {name!r}")
        if name in LIST_SETTINGS:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{name} must be a list of strings")
        elif not isinstance(value, str):
            raise ValueError(f"{name} must be a string")
        if name == "cloud" and value not in CLOUDS:
            raise ValueError(f"cloud must be one of {', '.join(CLOUDS)}")
        if name == "audience":
            value = cypht.parse_audience(value)
        typed[name] = value
    return typed


def all_records(folder: Path | None = None) -> Iterator[Record | InputError]:
    """Every record of this operator, sorted by `.env` path; one that cannot be trusted or read is
    yielded as its error (with its `path`), so a walk over all of them reports it and goes on."""
    folder = folder or records_dir()
    check_folders(folder)
    try:
        names = sorted(p for p in os.listdir(folder) if p.endswith(SUFFIX) and not p.startswith("."))
    except FileNotFoundError:
        return
    found: list[Record | InputError] = []
    for name in names:
        try:
            rec = read(folder / name)
        except InputError as exc:
            exc.path = folder / name  # type: ignore[attr-defined]
            found.append(exc)
            continue
        if rec is not None:
            found.append(rec)
    found.sort(key=lambda r: r.env_file if isinstance(r, Record) else "")
    yield from found


# --- layering --------------------------------------------------------------------------------------

def layer(given: Mapping[str, Any], user_set: Collection[str], rec: Record | None) -> dict[str, Any]:
    """The options to use: what the operator set now, else what the record holds, else the default."""
    result = dict(given)
    for name, value in (rec.settings if rec else {}).items():
        if name in given and name not in user_set:
            result[name] = value
    return result


def relevant(given: Mapping[str, Any], user_set: Collection[str]) -> dict[str, Any]:
    """What the operator set now, as the record keeps it: paths absolute, lists as lists, empty dropped."""
    values: dict[str, Any] = {}
    for name in SETTINGS:
        if name not in user_set or name not in given:
            continue
        value = given[name]
        if name in LIST_SETTINGS:
            value = [str(v) for v in (value or []) if str(v).strip()]
            if not value:
                continue
        else:
            if value is None or str(value) == "":
                continue
            value = str(value)
            if name == "ca_file":
                value = os.path.abspath(value)  # a later run, from cron, starts in another folder
        values[name] = value
    return values


# --- write -----------------------------------------------------------------------------------------

def save(rec: Record, folder: Path | None = None) -> Path:
    """Write `rec` for its `.env`: atomically, 0600, in a 0700 folder of the operator's."""
    folder = folder or records_dir()
    _make_folder(folder)
    check_folders(folder)
    path = folder / (name_for(Path(rec.env_file)) + SUFFIX)
    text = json.dumps(rec.document(), indent=2) + "\n"
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        temp = f".{path.name}.{secrets.token_hex(6)}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE,
                     dir_fd=dir_fd)
        try:
            try:
                os.fchmod(fd, FILE_MODE)
                write_all(fd, text.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            os.fsync(dir_fd)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(temp, dir_fd=dir_fd)
            raise
    finally:
        os.close(dir_fd)
    rec.path = path
    return path


def _make_folder(folder: Path) -> None:
    missing = []
    for part in [folder, *folder.parents]:
        if os.path.lexists(part):
            break
        missing.append(part)
    for part in reversed(missing):
        # the records' own folder is private; a folder above it gets what the tool's others get
        # (toolfiles.ensure_dir: /etc/cypht-azure is 0750 for root)
        mode = DIR_MODE if part == folder or os.geteuid() != 0 else 0o750
        with suppress(FileExistsError):
            os.mkdir(part, mode)
            os.chmod(part, mode)  # the umask must not widen or narrow it


def remember(env_file: Path, *, settings: Mapping[str, Any], installation_id: str | None = None,
             client_id: str | None = None, secret_expires: str | None = None,
             last_run: Mapping[str, Any] | None = None, folder: Path | None = None) -> Path:
    """Update the record of `env_file`: the settings given now over the recorded ones, and the state."""
    rec = load(env_file, folder) or Record(env_key(env_file))
    rec.env_file = env_key(env_file)
    rec.settings = {**rec.settings, **settings}
    rec.installation_id = installation_id or rec.installation_id
    rec.client_id = client_id or rec.client_id
    rec.secret_expires = secret_expires or rec.secret_expires
    if last_run is not None:
        rec.last_run = dict(last_run)
    return save(rec, folder)


def last_run(command: str, exit_code: int) -> dict[str, Any]:
    return {"command": command, "exit_code": exit_code,
            "time": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


# --- settings an older version left in `.env` ------------------------------------------------------

def legacy_settings(doc: Any) -> dict[str, str]:
    """The `CYPHT_AZURE_*` settings an older cypht-azure recorded in `.env`: key -> value, never used."""
    return {key: value for key in LEGACY_KEYS if (value := (doc.get(key) or "").strip())}


def legacy_warning(env_file: Path, keys: Collection[str]) -> str:
    return (f"{env_file} holds settings an older cypht-azure recorded there ({', '.join(sorted(keys))}). They "
            "are not used: whoever can write .env could send the sign-in elsewhere. Check them and move them "
            f"into the installation record with: cypht-azure record migrate --env-file {env_file}")


def from_legacy(values: Mapping[str, str], *, cwd: str | None = None) -> dict[str, Any]:
    """The record's settings for the `.env` keys `values` (raises InputError for a value no option takes)."""
    settings: dict[str, Any] = {}
    for key, raw in values.items():
        name = LEGACY_KEYS[key]
        if name in LIST_SETTINGS:
            settings[name] = raw.split()
        elif name == "ca_file":
            settings[name] = os.path.abspath(os.path.join(cwd or os.getcwd(), raw))
        else:
            settings[name] = raw
    try:
        return _typed(settings, Path("-"))
    except (ValueError, cypht.InvalidInput) as exc:
        raise InputError(f"A setting in .env cannot be moved: {exc}.",
                         hint="Fix or remove that line in .env, then run record migrate again.") from None


class Installations(list[Record]):
    """`status --installations`: the records of this operator, and the ones that could not be read."""

    def __init__(self, folder: Path, records: list[Record], problems: list[str]) -> None:
        super().__init__(records)
        self.folder = folder
        self.problems = problems


def installations(folder: Path | None = None) -> Installations:
    folder = folder or records_dir()
    records: list[Record] = []
    problems: list[str] = []
    for rec in all_records(folder):
        if isinstance(rec, Record):
            records.append(rec)
        else:
            problems.append(rec.message)
    return Installations(folder, records, problems)


def forget(env_file: Path, folder: Path | None = None) -> bool:
    """Remove the record of `env_file` (after deprovision); False when there was none."""
    path = path_for(env_file, folder)
    check_folders(path.parent)
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True
