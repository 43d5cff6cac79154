"""TLS trust for every HTTPS client of the tool: the system's trust store, plus --ca-file's CA.

`--ca-file` adds a CA; it never replaces the store. httpx and urllib take an SSL context, which
holds both. azure-identity (through requests) takes only a path, so it gets one PEM bundle of the
store requests would use (REQUESTS_CA_BUNDLE, else certifi's) followed by the extra CA. The bundle
holds public certificates only; it lives in the cache folder under a content-addressed name (so
runs share it and nothing accumulates), mode 0644; without a writable
cache folder, in a private temporary folder removed at exit.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import shutil
import ssl
import tempfile
from pathlib import Path


def ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """The system's trust store, plus ``ca_file``'s CA when given."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cypht-azure"


def _system_bundle() -> bytes:
    """The CA bundle requests verifies against when not told otherwise."""
    path = os.environ.get("REQUESTS_CA_BUNDLE") or ""
    if not os.path.isfile(path):
        import certifi

        path = certifi.where()
    return Path(path).read_bytes()


@functools.lru_cache(maxsize=4)
def requests_bundle(ca_file: str) -> str:
    """The path of a PEM bundle: requests' system store, then ``ca_file``."""
    system = _system_bundle()
    data = system + (b"" if system.endswith(b"\n") else b"\n") + Path(ca_file).read_bytes()
    name = f"ca-bundle-{hashlib.sha256(data).hexdigest()[:32]}.pem"
    try:
        return _write(cache_dir(), name, data)
    except OSError:  # no writable cache folder: a private temp copy, removed at exit
        folder = Path(tempfile.mkdtemp(prefix="cypht-azure-ca-"))
        atexit.register(shutil.rmtree, folder, True)
        return _write(folder, name, data)


def _write(folder: Path, name: str, data: bytes) -> str:
    target = folder / name
    if target.is_file() and target.read_bytes() == data:
        return str(target)
    folder.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=folder, prefix=".ca-bundle-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(temp, 0o644)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return str(target)


def requests_verify(ca_file: str | None) -> dict[str, str]:
    """azure-identity's ``connection_verify`` keyword for ``ca_file``; none (the system store) without one."""
    return {"connection_verify": requests_bundle(ca_file)} if ca_file else {}
