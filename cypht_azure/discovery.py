"""The tenant's OpenID configuration (and MSAL's instance discovery), kept on disk for a day.

Every credential that signs in with MSAL reads `{authority}/{tenant}/v2.0/.well-known/openid-configuration`
before its first token: a round trip on the critical path of every run, for a public document that
changes rarely. The run's transport (auth.run_transport) answers it from here when a copy is fresh and
checked, and stores what it read otherwise.

The copy decides where the credential goes (its token endpoint), so only the operator may have
written it: the folder is the operator's cache folder (`$XDG_CACHE_HOME/cypht-azure/discovery`, else
`~/.cache/...`), mode 0700, owned by the running user; every folder above it is owned by root or the
running user and writable by no one else (a sticky folder such as /tmp is allowed, as no one else can
replace an entry in it); the file is opened with O_NOFOLLOW relative to the folder's descriptor and
must be a regular file of the running user, mode 0600. A document is used only if its endpoints are
https URLs on the host (and port) it was read from and its issuer names that host and the tenant
asked for. Anything else, and any error, means a fresh read; nothing here is ever fatal.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

MAX_AGE = 24 * 3600.0  # seconds a copy is used
ENDPOINT_KEYS = ("token_endpoint", "authorization_endpoint", "device_authorization_endpoint")
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)


def folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cypht-azure" / "discovery"


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or 443


def acceptable(url: str, document: Any) -> bool:
    """Whether `document`, read from `url`, may steer a credential: its endpoints stay on `url`'s host."""
    if not isinstance(document, dict):
        return False
    origin = _origin(url)
    if origin[0] != "https":
        return False
    path = urlsplit(url).path.rstrip("/")
    if path.endswith("/common/discovery/instance"):
        target = document.get("tenant_discovery_endpoint")
        return isinstance(target, str) and _origin(target) == origin
    if not path.endswith("/.well-known/openid-configuration"):
        return False
    for key in ENDPOINT_KEYS:
        value = document.get(key)
        if key == "token_endpoint" and not isinstance(value, str):
            return False
        if value is not None and (not isinstance(value, str) or _origin(value) != origin):
            return False
    issuer = document.get("issuer")
    if not isinstance(issuer, str) or _origin(issuer) != origin:
        return False
    asked = path.strip("/").split("/")[0]  # the tenant segment of .../{tenant}/v2.0/.well-known/...
    named = urlsplit(issuer).path.strip("/").split("/")[0]
    if _GUID.fullmatch(asked):
        return named.lower() == asked.lower()
    return bool(_GUID.fullmatch(named)) or named == "{tenantid}"


def _safe_ancestors(path: Path, uid: int) -> bool:
    """Every folder above `path` is root's or the running user's, and no one else can replace entries."""
    for parent in path.parents:
        try:
            info = os.stat(parent)
        except OSError:
            return False
        if info.st_uid not in (0, uid):
            return False
        if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
            return False
    return True


@contextlib.contextmanager
def _open_folder(create: bool) -> Iterator[int | None]:
    """A descriptor of the cache folder when it is the operator's (see the module docstring), else None."""
    fd = _folder_fd(create)
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


def _folder_fd(create: bool) -> int | None:
    uid = os.geteuid()
    path = folder()
    try:
        if create:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                path.mkdir(mode=0o700)
        if not _safe_ancestors(path, uid):
            return None
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    info = os.fstat(fd)
    if info.st_uid != uid or stat.S_IMODE(info.st_mode) & 0o077:
        os.close(fd)
        return None
    return fd


def _name(url: str) -> str:
    return "doc-" + hashlib.sha256(url.encode()).hexdigest()[:40] + ".json"


def load(url: str, *, now: float | None = None) -> bytes | None:
    """The document read from `url` earlier, if fresh and checked; None means: read it again."""
    now = time.time() if now is None else now
    with _open_folder(create=False) as dir_fd:
        if dir_fd is None:
            return None
        try:
            fd = os.open(_name(url), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError:
            return None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) & 0o077 \
                    or info.st_size > 256 * 1024:
                return None
            with os.fdopen(os.dup(fd), "rb") as handle:
                entry = json.loads(handle.read())
        except (OSError, ValueError):
            return None
        finally:
            os.close(fd)
    if not isinstance(entry, dict) or entry.get("url") != url:
        return None
    fetched = entry.get("fetched")
    if not isinstance(fetched, (int, float)) or not 0 <= now - fetched <= MAX_AGE:
        return None
    body = entry.get("body")
    if not acceptable(url, body):
        return None
    return json.dumps(body).encode()


def store(url: str, content: bytes, *, now: float | None = None) -> bool:
    """Keep a document just read from `url` (only one that `acceptable` passes). True when kept."""
    try:
        body = json.loads(content)
    except ValueError:
        return False
    if not acceptable(url, body):
        return False
    data = json.dumps({"url": url, "fetched": time.time() if now is None else now, "body": body}).encode()
    name = _name(url)
    with _open_folder(create=True) as dir_fd:
        if dir_fd is None:
            return False
        temp = f".{name}.{os.getpid()}.tmp"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=dir_fd)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=dir_fd)
            return False
    return True
