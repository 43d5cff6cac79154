"""Every finding `status` and `doctor` report, each defined once: its code, severity, wording and fix.

The catalogue (`CATALOGUE`) says which command can report which code; docs/schemas/status.json and
docs/schemas/doctor.json list exactly those codes (a test compares them). Messages never carry a
secret: they name keys, IDs and URLs only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from cypht_azure import cypht
from cypht_azure.durations import describe

STATUS, DOCTOR = "status", "doctor"


@dataclass
class Finding:
    severity: str  # "error" | "warning" | "info"
    code: str
    message: str
    fix: str = ""


@dataclass(frozen=True)
class Definition:
    severity: str
    commands: tuple[str, ...]
    meaning: str


CATALOGUE: dict[str, Definition] = {
    "app-not-found": Definition("error", (STATUS, DOCTOR), "No registration with the client ID the .env names."),
    "app-deleted": Definition("error", (STATUS, DOCTOR), "The registration was deleted (restorable for 30 days)."),
    "providers-differ": Definition("error", (STATUS,), "The provider blocks name different registrations."),
    "missing-keys": Definition("error", (STATUS, DOCTOR), "A key Cypht needs is missing or empty."),
    "secret-unknown": Definition("warning", (STATUS,), "The secret is set but its secret ID is not."),
    "redirect-mismatch": Definition("error", (STATUS, DOCTOR), "*_CLIENT_URI is not a registered web redirect URI."),
    "redirect-query-personal": Definition("error", (STATUS,), "A redirect URI has a query string with a personal audience."),
    "secret-not-in-app": Definition("error", (STATUS,), "The secret .env holds is no longer on the registration."),
    "env-copied": Definition("warning", (STATUS,), "Another .env with the same installation ID (a copy) has secrets "
                             "on the registration."),
    "secret-expired": Definition("error", (STATUS, DOCTOR), "The secret has expired."),
    "secret-expiring": Definition("warning", (STATUS, DOCTOR), "The secret expires within the warning window."),
    "secret-rejected": Definition("error", (STATUS, DOCTOR), "The token endpoint refused the secret."),
    "service-principal-missing": Definition(
        "error", (STATUS, DOCTOR), "The app has no service principal in its tenant, so its secret cannot be checked."),
    "env-shadowed": Definition("error", (STATUS, DOCTOR), "The process environment overrides a different value in .env."),
    "env-shadowed-same": Definition("info", (STATUS, DOCTOR), "The process environment repeats a value of .env."),
    "client-uri-unusable": Definition("error", (DOCTOR,), "*_CLIENT_URI breaks the authorize URL Cypht builds."),
    "endpoint-invalid": Definition("error", (DOCTOR,), "An endpoint key is not an authorize/token endpoint Cypht can use."),
    "cypht-scope": Definition("warning", (STATUS,), "A directory-only audience: Cypht's wl.imap scope does not work "
                              "at the v2.0 endpoints it needs."),
    "endpoints-mismatch": Definition("error", (DOCTOR,), "The token endpoint does not belong to the authorize endpoint."),
    "endpoint-audience": Definition("error", (STATUS, DOCTOR),
                                    "The endpoint signs in accounts the registration does not accept."),
    "scope-invalid": Definition("error", (DOCTOR,), "Cypht's scope wl.imap does not exist at that endpoint."),
    "scope-unverified": Definition("warning", (DOCTOR,), "Whether wl.imap works at that endpoint is not known."),
    "redirect-not-web": Definition("error", (DOCTOR,), "*_CLIENT_URI is registered for another platform than Web."),
    "provider-not-configured": Definition("warning", (DOCTOR,), "A provider block has no client ID: its button fails."),
    "rehearsal-failed": Definition("error", (DOCTOR,), "Against the emulator, a step of Cypht's sign-in failed."),
    "secret-check-failed": Definition("error", (STATUS, DOCTOR),
                                      "The token endpoint could not be reached to check the secret."),
}


def codes_for(command: str) -> set[str]:
    return {code for code, d in CATALOGUE.items() if command in d.commands}


def _make(code: str, message: str, fix: str = "") -> Finding:
    return Finding(CATALOGUE[code].severity, code, message, fix)


ROTATE = "Run `cypht-azure rotate-secret`."
PLACEHOLDER_URL = "<Cypht's URL>"  # only where neither .env, the registration nor --url says it


def provision_command(url: str | None, *options: str) -> str:
    """`cypht-azure provision … --url URL`, with the URL this run knows, so the fix runs as printed."""
    import shlex

    return " ".join(["cypht-azure provision", *options, "--url", shlex.quote(url) if url else PLACEHOLDER_URL])


def provision_url(url: str | None) -> str:
    return f"Run `{provision_command(url)}`."


# --- the registration ------------------------------------------------------------------------------

def app_deleted(app_id: str, when: object) -> Finding:
    return _make("app-deleted", f"The app registration {app_id} was deleted on {when}.",
                 f"Restore it within 30 days: `cypht-azure restore --app-id {app_id}`.")


def app_not_found(what: str, named_by: str, tenant_id: str, url: str | None = None) -> Finding:
    return _make("app-not-found", f"No app registration {what} (named by {named_by}) in tenant {tenant_id}.",
                 f"Check --tenant, or run `{provision_command(url)}` to create one.")


def providers_differ(assignments: Iterable[str]) -> Finding:
    return _make("providers-differ", "The provider blocks point at different apps: " + ", ".join(assignments) + ".",
                 "Run `cypht-azure provision --app-id ID` to make both blocks use one registration.")


def service_principal_missing(app_id: str, tenant_id: str) -> Finding:
    return _make(
        "service-principal-missing",
        f"The app {app_id} has no service principal (enterprise application) in tenant {tenant_id}: the token "
        "endpoint answers AADSTS7000229, so nothing proves the client secret works.",
        "Run `cypht-azure status --verify-secret` or `cypht-azure provision`: both create it (as the Entra admin "
        "center does for every registration it makes).",
    )


# --- .env keys --------------------------------------------------------------------------------------

def missing_secret(key: str) -> Finding:
    return _make("missing-keys", f"{key} is missing or empty: the token endpoint refuses Cypht's code "
                 "redemption (AADSTS7000218).", "Run `cypht-azure rotate-secret` to create and store a secret.")


def missing_client_uri(key: str, url: str | None = None) -> Finding:
    return _make("missing-keys", f"{key} is missing or empty: Cypht then uses http://localhost/?page=home, which no "
                 "registration accepts.", provision_url(url))


def missing_client_id(key: str, url: str | None = None) -> Finding:
    return _make("missing-keys", f"{key} is missing or empty: Cypht sends an empty client_id and Microsoft shows an "
                 "error page.", provision_url(url))


def secret_unknown(secret_key: str, id_key: str) -> Finding:
    return _make("secret-unknown", f"{secret_key} is set but {id_key} is not, so cypht-azure cannot tell which "
                 "client secret it is.", "Run `cypht-azure rotate-secret` to replace it with a tracked one.")


def env_shadowed(key: str) -> Finding:
    return _make(
        "env-shadowed",
        f"{key} is set in the environment, so Cypht ignores the different value in .env (symfony/dotenv never "
        "overrides a variable that already exists); cypht-azure's changes to .env will not reach Cypht.",
        f"Remove {key} from the environment Cypht runs in (Docker `environment:`), or give cypht-azure the file "
        "that environment comes from (Docker `env_file:`) with --env-file.",
    )


def shadowing(settings: Iterable[cypht.Setting]) -> list[Finding]:
    """Keys the process environment sets too (status and doctor alike): Cypht never sees the file's value."""
    found: list[Finding] = []
    for setting in settings:
        if setting.differs:
            found.append(env_shadowed(setting.key))
        elif setting.shadowed:
            found.append(env_shadowed_same(setting.key))
    return found


def env_shadowed_same(key: str) -> Finding:
    return _make("env-shadowed-same", f"{key} is also set in the environment, with the same value as in .env: the "
                 "next rotation changes .env only, and Cypht would keep the old value.",
                 f"Remove {key} from the environment Cypht runs in, or give cypht-azure the file it comes from.")


def provider_not_configured(prefix: str, url: str | None = None) -> Finding:
    return _make("provider-not-configured", f"{prefix}_CLIENT_ID is empty: Cypht still shows this provider's "
                 "Enable button, and it fails.", f"Run `{provision_command(url, '--provider', 'both')}`.")


# --- redirect URI ------------------------------------------------------------------------------------

def redirect_mismatch(key: str, uri: str, registered: list[str], near: str | None = None) -> Finding:
    detail = f" (registered: {near}, which differs in case or a trailing slash)" if near else ""
    return _make(
        "redirect-mismatch",
        f"{key}={uri} is not a redirect URI of the app ({', '.join(registered) or 'none'}){detail}: "
        "sign-in fails with AADSTS50011.", f"Run `{provision_command(uri)}` to register it.")


def redirect_not_web(key: str, uri: str, platform: str) -> Finding:
    return _make("redirect-not-web", f"{key}={uri} is registered as a {platform} redirect URI, not Web: Cypht sends a "
                 "client secret, which the token endpoint refuses from that platform.", provision_url(uri))


def redirect_query_personal(uri: str) -> Finding:
    return _make("redirect-query-personal", f"The redirect URI {uri} has a query string, which Entra refuses for "
                 "apps that accept personal accounts.", "Register the bare base URL instead: "
                 "`cypht-azure provision --url ...`.")


def client_uri_unusable(key: str, uri: str, problem: str) -> Finding:
    return _make("client-uri-unusable", f"{key}={uri}: {problem}.", provision_url(None))


# --- endpoints and scope -------------------------------------------------------------------------------

def endpoint_invalid(key: str, uri: str, problem: str) -> Finding:
    return _make("endpoint-invalid", f"{key}={uri}: {problem}.",
                 f"Remove {key} from .env (Cypht then uses login.live.com) or set it to the matching endpoint.")


def endpoints_mismatch(auth_key: str, auth: str, token_key: str, token: str) -> Finding:
    return _make("endpoints-mismatch", f"{token_key}={token} is not the token endpoint of {auth_key}={auth}: a code "
                 "issued by one is not redeemed by the other.", f"Set {token_key} to the token endpoint of the same "
                 "family and tenant as the authorize endpoint.")


def endpoint_audience(key: str, uri: str, audience: str, answer: str) -> Finding:
    return _make("endpoint-audience", f"{key}={uri} signs in accounts the app (signInAudience {audience}) does not "
                 f"accept: {answer}", "Run `cypht-azure provision`: it writes the endpoints that fit the app's "
                 "audience (login.live.com for personal accounts). Or provision with --audience any.")


def cypht_scope(audience: str) -> Finding:
    return _make("cypht-scope", f"The app accepts work or school accounts only ({audience}), which sign in at the "
                 f"v2.0 endpoints. {cypht.SCOPE_NOTE}", "")


def scope_invalid(key: str, uri: str) -> Finding:
    message = (f"{key}={uri} is a v2.0 endpoint: there Cypht's scope wl.imap names a Microsoft Graph permission "
               "that does not exist, so work and school accounts are sent back with invalid_client AADSTS650053.")
    parts = urlsplit(uri.strip())
    host = (parts.hostname or "").lower()
    if host in cypht.DIRECTORY_LOGIN_HOSTS or host == cypht.LIVE_HOST:
        return _make("scope-invalid", message,
                     "Cypht as shipped works only with login.live.com (personal accounts): remove the *_AUTH_URI, "
                     "*_TOKEN_URI and *_REFRESH_URI overrides.")
    # Another server (an emulator, in a rehearsal): Cypht's defaults would leave it for the real login.live.com.
    prefix = key.removesuffix("_AUTH_URI")
    live = cypht.live_endpoints_at(f"{parts.scheme}://{parts.netloc}")
    return _make("scope-invalid", message,
                 "Cypht as shipped works only with login.live.com's endpoints, which this server (an emulator, in a "
                 "rehearsal) serves too: set " + " ".join(f"{prefix}_{name}={url}" for name, url in live.items())
                 + " (as `provision --emulator-endpoints` writes them). Removing the overrides would send Cypht to "
                 "the real login.live.com.")


def scope_unverified(key: str, uri: str) -> Finding:
    return _make("scope-unverified", f"{key}={uri}: whether the /consumers endpoint accepts Cypht's Live scope "
                 "wl.imap is not documented.", "Prefer Cypht's default login.live.com endpoints.")


# --- the client secret --------------------------------------------------------------------------------

def secret_not_in_app(key: str, secret_id: str) -> Finding:
    return _make("secret-not-in-app", f"The client secret in {key} ({secret_id}) no longer exists on the app: "
                 "sign-in fails with AADSTS7000215.", ROTATE)


def env_copied(installation: str, key_ids: list[str]) -> Finding:
    return _make("env-copied",
                 f"Secret(s) {', '.join(key_ids)} were made by another .env with this file's installation ID "
                 f"({installation}): a copy of this .env. cypht-azure leaves them alone.",
                 "Give the copy its own ID: remove CYPHT_AZURE_INSTALLATION_ID from it, then run "
                 "`cypht-azure rotate-secret` with that file.")


def secret_expired(key_id: str, end: object) -> Finding:
    return _make("secret-expired", f"The client secret in .env ({key_id}) expired on {end}: Outlook/Office365 "
                 "sign-in is broken.", "Run `cypht-azure rotate-secret` now.")


def secret_expiring(key_id: str, days: float, end: object) -> Finding:
    left = describe(dt.timedelta(days=days))  # "1 hour", "365 days": as rotate-secret says it
    return _make("secret-expiring", f"The client secret in .env ({key_id}) expires in {left} ({end}).",
                 "Run `cypht-azure rotate-secret` (or schedule it with --if-expiring-within).")


def secret_rejected(why: str, key: str = "", *, from_environment: bool = False) -> Finding:
    where = f" in {key}" if key else " in .env"
    fix = (f"Correct or remove {key} in the environment Cypht runs in; cypht-azure writes only .env."
           if from_environment else ROTATE)
    return _make("secret-rejected", f"The token endpoint refused the client secret{where}: {why}", fix)


def secret_check_failed(why: str) -> Finding:
    return _make("secret-check-failed", f"The client secret could not be checked at the token endpoint: {why}",
                 "Check the network and --authority-host, then run the command again.")


def rehearsal_failed(prefix: str, step: str, answer: str) -> Finding:
    return _make("rehearsal-failed", f"{prefix}: Cypht's sign-in, replayed against the emulator, failed at "
                 f"'{step}': {answer}", "Fix the findings above; the step's answer names the cause.")
