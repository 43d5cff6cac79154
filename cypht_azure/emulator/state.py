"""Persistence of the directory: one JSON document, shared safely between processes.

Every mutation runs inside :meth:`StateStore.write`, which takes an exclusive
``flock`` on ``state.lock``, reloads ``state.json`` if another process replaced
it since we last read it, lets the caller mutate the in-memory document, then
writes it back atomically (temp file, fsync, rename). Readers only compare the
file's stat signature and reload when it changed; ``os.replace`` guarantees
they never see a half-written file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"
LOCK_FILE = "state.lock"

Signature = tuple[int, int, int]


class StateStore:
    """Holds the state document in memory, optionally mirrored to ``directory``."""

    def __init__(self, directory: Path | None, initial: Callable[[], dict[str, Any]]) -> None:
        self.directory = directory
        self.lock = threading.RLock()
        self._depth = 0
        self._lock_fd: int | None = None
        self._signature: Signature | None = None
        # Holding the loaded file open pins its inode: a later replacement can
        # never reuse that inode number, so the stat signature always changes.
        self._held_fd: int | None = None
        self.dirty = False
        self.data: dict[str, Any]
        if directory is None:
            self.data = initial()
            return
        directory.mkdir(parents=True, exist_ok=True)
        with self._flock():
            loaded = self._load_if_changed()
            if loaded is None:
                self.data = initial()
                self._save()
            else:
                self.data = loaded

    @property
    def path(self) -> Path | None:
        return None if self.directory is None else self.directory / STATE_FILE

    # -- reading -----------------------------------------------------------

    @contextlib.contextmanager
    def read(self) -> Iterator[dict[str, Any]]:
        with self.lock:
            if self.directory is not None and self._depth == 0:
                loaded = self._load_if_changed()
                if loaded is not None:
                    self.data = loaded
            yield self.data

    # -- writing -----------------------------------------------------------

    @contextlib.contextmanager
    def write(self) -> Iterator[dict[str, Any]]:
        """Re-entrant: nested writes join the outermost transaction."""
        with self.lock:
            outer = self._depth == 0
            self._depth += 1
            try:
                if outer and self.directory is not None:
                    with self._flock():
                        loaded = self._load_if_changed()
                        if loaded is not None:
                            self.data = loaded
                        self.dirty = False
                        try:
                            yield self.data
                        except BaseException:
                            # Drop half-applied changes: the file still holds the truth.
                            if self.dirty:
                                self._signature = None
                                reloaded = self._load_if_changed()
                                if reloaded is not None:
                                    self.data = reloaded
                            raise
                        if self.dirty:
                            self._save()
                else:
                    yield self.data
            finally:
                self._depth -= 1
                if outer:
                    self.dirty = False

    def mark_dirty(self) -> None:
        self.dirty = True

    # -- file plumbing -----------------------------------------------------

    @contextlib.contextmanager
    def _flock(self) -> Iterator[None]:
        assert self.directory is not None
        fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _load_if_changed(self) -> dict[str, Any] | None:
        assert self.path is not None
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        st = os.fstat(fd)
        signature = (st.st_ino, st.st_mtime_ns, st.st_size)
        if signature == self._signature:
            os.close(fd)
            return None
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        data: dict[str, Any] = json.loads(b"".join(chunks))
        self._hold(fd, signature)
        return data

    def _hold(self, fd: int, signature: Signature) -> None:
        if self._held_fd is not None:
            os.close(self._held_fd)
        self._held_fd = fd
        self._signature = signature

    def close(self) -> None:
        with self.lock:
            if self._held_fd is not None:
                os.close(self._held_fd)
                self._held_fd = None

    def _save(self) -> None:
        assert self.directory is not None and self.path is not None
        tmp = self.directory / f".{STATE_FILE}.{os.getpid()}.{threading.get_ident()}.tmp"
        payload = json.dumps(self.data, separators=(",", ":")).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        held = os.open(self.path, os.O_RDONLY)  # still under flock: this is our file
        st = os.fstat(held)
        self._hold(held, (st.st_ino, st.st_mtime_ns, st.st_size))
        self.dirty = False


def write_json_atomic(path: Path, obj: Any, mode: int = 0o600) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
