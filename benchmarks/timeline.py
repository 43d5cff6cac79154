"""What a run waited for: its requests on a time line, which of them ran one after another, and why."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def sign_in_line(output: str) -> str:
    """The --verbose line that says whether the Graph client waited for sign-in (operations/core/session.py)."""
    for line in output.splitlines():
        if "Graph client ready" in line:
            return "sign-in vs imports: " + line.split(": ", 1)[-1]
    return "sign-in vs imports: not reported (no 'Graph client ready' line in --verbose output)"


def why(entry: Any, signed_in: str, after_graph: bool) -> str:
    path = entry.path.split("?")[0]
    if entry.kind == "openid":
        if not after_graph:
            return "sign-in: MSAL (sync azure-identity) reads the tenant's token endpoint first; on the sign-in thread"
        # The check shares the sign-in's transport, which remembers the document: read here only when
        # the sign-in did not read it (--auth azure-cli) or read another tenant's.
        return "secret check: MSAL reads the tenant's token endpoint, which the sign-in did not"
    if entry.kind == "token":
        if entry.client_id == signed_in:
            return "sign-in: needs the token endpoint from discovery; on the sign-in thread"
        return "secret check: needs the secret addPassword returned; repeated until Entra accepts it"
    if path.endswith("/addPassword"):
        return "needs the app's object id from the call before, and its answer is the secret the .env gets"
    if path.endswith("/removePassword"):
        return "the old secret goes only after the new one is verified and written to .env"
    if "servicePrincipals" in path:
        return "needs the appId the create returned"
    if entry.method == "POST" and path.endswith("/v1.0/applications"):
        return ("create (refused, changing nothing, if the uniqueName is taken); needs the token, and every "
                "later call needs its ids")
    if entry.method == "GET" and "applications" in path:
        return "reads the app (its secrets and settings) to decide what to change; needs the token"
    return "other"


def timeline_report(log: Sequence[Any], started: float, signed_in: str) -> list[str]:
    """Each request from process start (ms), marked sequential unless another request overlapped it."""
    entries = [e for e in log if e.kind != "admin"]
    spans = [(e.timestamp - e.duration_ms / 1000 - started, e.timestamp - started) for e in entries]
    lines, sequential, seen_graph = [], 0, False
    for i, (entry, (start, end)) in enumerate(zip(entries, spans, strict=True)):
        overlapped = any(s < end and start < e for j, (s, e) in enumerate(spans) if j != i)
        sequential += not overlapped
        reason = why(entry, signed_in, seen_graph)
        seen_graph |= entry.kind == "graph"
        name = entry.path.split("?")[0].rsplit("/", 1)[-1][:40]
        lines.append(f"{start * 1000:6.0f} -> {end * 1000:6.0f} ms  {entry.method:5} {name:40} "
                     f"{'concurrent' if overlapped else 'sequential'}: {reason}")
    graph = [s for e, (s, _) in zip(entries, spans, strict=True) if e.kind == "graph"]
    token = [end for e, (_, end) in zip(entries, spans, strict=True) if e.kind == "token" and e.client_id == signed_in]
    summary = f"{len(entries)} round trips, {sequential} of them sequential"
    if graph and token:
        summary += f"; sign-in token answered {(min(graph) - token[0]) * 1000:.0f} ms before the first Graph request left"
    return [summary, *lines]
