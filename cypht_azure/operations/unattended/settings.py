"""Settings recorded in `.env`, so that `rotate-secret --env-file F` finds the app again on its own.

What the user set on the command line or in the environment when a command last wrote `.env` (tenant,
cloud or custom endpoints, CA file, audience, notify URLs) is kept in `CYPHT_AZURE_*` keys, which Cypht
never reads. Next time they are layered *under* the command line: an option given now wins, a recorded
one fills in what was not given, the built-in default comes last (certbot's `relevant_values` and
`restore_required_config_elements`). Never a credential: sign-in methods, client IDs, secrets,
certificates and tokens are not recorded.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cypht_azure import cypht, envdisk, envfile

# option name -> .env key. The same names as the environment variables of these options.
KEYS: dict[str, str] = {
    "tenant": "CYPHT_AZURE_TENANT",
    "cloud": "CYPHT_AZURE_CLOUD",
    "authority_host": "CYPHT_AZURE_AUTHORITY_HOST",
    "graph_url": "CYPHT_AZURE_GRAPH_URL",
    "ca_file": "CYPHT_AZURE_CA_FILE",
    "audience": "CYPHT_AZURE_AUDIENCE",
    "notify": "CYPHT_AZURE_NOTIFY",
}
LIST_OPTIONS = frozenset({"notify"})
CLOUDS = ("public", "usgov", "china")
COMMENT = "# Settings cypht-azure reuses next time (Cypht ignores these keys)"


@dataclass(frozen=True)
class Recorded:
    values: Mapping[str, Any]   # option name -> str, or list[str] for LIST_OPTIONS

    def get(self, name: str) -> Any:
        return self.values.get(name)


def read(doc: envfile.EnvDocument) -> Recorded:
    values: dict[str, Any] = {}
    for name, key in KEYS.items():
        raw = (doc.get(key) or "").strip()
        if not raw:
            continue
        if name in LIST_OPTIONS:
            values[name] = raw.split()
        elif name == "cloud" and raw not in CLOUDS:
            continue  # a hand-edited value the options would refuse: ignore rather than fail in cron
        elif name == "audience":
            try:
                values[name] = cypht.parse_audience(raw)
            except cypht.InvalidInput:
                continue
        else:
            values[name] = raw
    return Recorded(values)


def load(path: Path) -> Recorded:
    """The recorded settings of the `.env` at `path`; none when it does not exist yet."""
    try:
        return read(envdisk.load(path))
    except envfile.EnvFileError:
        return Recorded({})  # the command itself reads .env again and reports what is wrong with it


def layer(given: Mapping[str, Any], user_set: Collection[str], recorded: Recorded) -> dict[str, Any]:
    """The options to use: what the user set now, else what was recorded, else the given default."""
    result = dict(given)
    for name, value in recorded.values.items():
        if name in given and name not in user_set:
            result[name] = value
    return result


def updates(given: Mapping[str, Any], user_set: Collection[str], doc: envfile.EnvDocument) -> dict[str, str]:
    """The `.env` keys that record what the user set now (and differs from what is recorded)."""
    changes: dict[str, str] = {}
    for name, key in KEYS.items():
        if name not in user_set or name not in given:
            continue
        value = given[name]
        text = " ".join(value) if isinstance(value, (list, tuple)) else ("" if value is None else str(value))
        if text and doc.get(key) != text:
            changes[key] = text
    return changes
