"""Replaying the recorded Graph cassettes (../shared/graph-recordings) against the emulator."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
REPO_ROOT = Path(__file__).resolve().parents[2]

# Properties Graph added to applications after the 2022 recordings (present in the 2025 capture,
# graph.md §2.1): the emulator returns them, the cassettes cannot.
NEWER_APPLICATION_KEYS = frozenset(
    {"nativeAuthenticationApisEnabled", "uniqueName", "samlMetadataUrl", "servicePrincipalLockConfiguration",
     "requestSignatureVerification"}
)


def recordings_dir() -> Path | None:
    configured = os.environ.get("CYPHT_AZURE_RECORDINGS")
    candidates = [Path(configured)] if configured else []
    candidates.append(REPO_ROOT.parent / "shared" / "graph-recordings")
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.glob("*.yaml")):
            return candidate
    return None


def load(path: Path) -> list[dict[str, Any]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return list(data["interactions"])


@dataclass
class IdMap:
    """Recorded ids -> the ids the emulator handed out for the same objects."""

    mapping: dict[str, str] = field(default_factory=dict)

    def learn(self, recorded: Any, actual: Any) -> None:
        if isinstance(recorded, dict) and isinstance(actual, dict):
            for key in ("id", "appId", "keyId"):
                r, a = recorded.get(key), actual.get(key)
                if isinstance(r, str) and isinstance(a, str) and GUID.fullmatch(r) and GUID.fullmatch(a):
                    self.mapping.setdefault(r.lower(), a.lower())
            for key in ("value", "passwordCredentials"):
                self.learn(recorded.get(key), actual.get(key))
        elif isinstance(recorded, list) and isinstance(actual, list) and len(recorded) == len(actual):
            for r, a in zip(recorded, actual, strict=True):
                self.learn(r, a)

    def apply(self, text: str) -> str:
        return GUID.sub(lambda m: self.mapping.get(m.group(0).lower(), m.group(0)), text)


def key_shape(body: Any) -> dict[str, Any]:
    """The parts of an answer conformance compares: top-level keys, value[] keys, the error code."""
    if not isinstance(body, dict):
        return {}
    shape: dict[str, Any] = {"keys": set(body)}
    if isinstance(body.get("value"), list):
        shape["count"] = len(body["value"])
        shape["item_keys"] = [set(v) for v in body["value"] if isinstance(v, dict)]
    if isinstance(body.get("error"), dict):
        shape["error_code"] = body["error"].get("code")
        shape["error_keys"] = set(body["error"])
    return shape


def compare(recorded: Any, actual: Any) -> list[str]:
    """Differences between a recorded JSON answer and the emulator's, by keys (values differ by nature)."""
    want, got = key_shape(recorded), key_shape(actual)
    problems: list[str] = []

    def keys(where: str, w: set[str], g: set[str]) -> None:
        missing = w - g
        extra = g - w - NEWER_APPLICATION_KEYS
        if missing:
            problems.append(f"{where}: missing {sorted(missing)}")
        if extra:
            problems.append(f"{where}: unexpected {sorted(extra)}")

    if not want:
        if got:
            problems.append("expected an empty body")
        return problems
    keys("top-level keys", want["keys"], got.get("keys", set()))
    if "count" in want:
        if want["count"] != got.get("count"):
            problems.append(f"value[] has {got.get('count')} items, recorded {want['count']}")
        else:
            for i, (w, g) in enumerate(zip(want["item_keys"], got["item_keys"], strict=True)):
                keys(f"value[{i}] keys", w, g)
    if "error_code" in want and want["error_code"] != got.get("error_code"):
        problems.append(f"error code {got.get('error_code')}, recorded {want['error_code']}")
    return problems


def parse_body(text: str) -> Any:
    if not text:
        return None
    return json.loads(text)
