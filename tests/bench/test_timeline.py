"""The benchmark's reading of a request log: which round trips overlapped, and why each waited."""

from __future__ import annotations

import sys
from pathlib import Path

from cypht_azure.emulator.requestlog import LogEntry

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from timeline import sign_in_line, timeline_report

ADMIN, NEW_APP = "admin-client", "new-client"


def entry(kind: str, method: str, path: str, start: float, end: float, client_id: str | None = None) -> LogEntry:
    return LogEntry(method=method, path=path, status=200, kind=kind, timestamp=end, client_id=client_id,
                    duration_ms=(end - start) * 1000)


def test_sequential_and_concurrent_round_trips_with_their_reasons() -> None:
    log = [
        entry("openid", "GET", "/t/v2.0/.well-known/openid-configuration", 0.10, 0.20),
        entry("token", "POST", "/t/oauth2/v2.0/token", 0.21, 0.31, ADMIN),
        entry("graph", "POST", "/v1.0/applications", 0.40, 0.50),
        entry("graph", "POST", "/v1.0/servicePrincipals", 0.51, 0.61),
        entry("graph", "POST", "/v1.0/applications/1/addPassword", 0.52, 0.62),
        entry("token", "POST", "/t/oauth2/v2.0/token", 0.74, 0.84, NEW_APP),
        entry("admin", "GET", "/_emulator/log", 0.0, 0.9),
    ]
    summary, *lines = timeline_report(log, 0.0, ADMIN)
    assert summary == ("6 round trips, 4 of them sequential; "
                       "sign-in token answered 90 ms before the first Graph request left")
    assert [line.split(": ")[0].split()[-1] for line in lines] == [
        "sequential", "sequential", "sequential", "concurrent", "concurrent", "sequential"]
    assert "sign-in: MSAL" in lines[0] and "sign-in: needs the token endpoint" in lines[1]
    assert "create (refused" in lines[2] and "appId the create returned" in lines[3]
    assert "secret check: needs the secret" in lines[5]
    assert lines[0].startswith("   100 ->    200 ms  GET")


def test_a_discovery_after_graph_is_the_secret_checks() -> None:
    """--auth azure-cli reads no OpenID configuration at sign-in: the check's is its first."""
    log = [
        entry("graph", "GET", "/v1.0/applications(appId='a')", 0.10, 0.20),
        entry("graph", "POST", "/v1.0/applications/1/addPassword", 0.21, 0.31),
        entry("openid", "GET", "/t/v2.0/.well-known/openid-configuration", 0.32, 0.42),
        entry("token", "POST", "/t/oauth2/v2.0/token", 0.43, 0.53, NEW_APP),
    ]
    _, *lines = timeline_report(log, 0.0, ADMIN)
    assert "secret check: MSAL reads the tenant's token endpoint" in lines[2]


def test_sign_in_line_reads_the_verbose_output() -> None:
    out = "Signing in\ncypht_azure.session: Graph client ready; signed in 42 ms earlier\nDone."
    assert sign_in_line(out) == "sign-in vs imports: Graph client ready; signed in 42 ms earlier"
    assert "not reported" in sign_in_line("Done.")
