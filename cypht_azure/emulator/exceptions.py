"""The error catalogue: one class per real Graph / Entra error code.

Graph errors render as ``{"error": {"code", "message", "innerError"}}``;
token-endpoint errors render as the AADSTS-style OAuth body.
"""

from __future__ import annotations

from typing import Any


class GraphError(Exception):
    status = 400
    code = "Request_BadRequest"
    message = "Bad request."

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
        details: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        inner: dict[str, Any] | None = None,
    ) -> None:
        if message is not None:
            self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.details = details
        self.headers = headers or {}
        self.inner = inner or {}
        super().__init__(self.message)


class BadRequest(GraphError):
    status, code = 400, "Request_BadRequest"


class InvalidValue(BadRequest):
    def __init__(self, prop: str, resource: str = "Application") -> None:
        super().__init__(f"Invalid value specified for property '{prop}' of resource '{resource}'.")


class UnknownProperty(BadRequest):
    def __init__(self, prop: str, type_name: str) -> None:
        super().__init__(f"Property '{prop}' does not exist on type '{type_name}'.")


class InvalidObjectIdentifier(BadRequest):
    def __init__(self, value: str) -> None:
        super().__init__(f"Invalid object identifier '{value}'.")


class SegmentNotFound(GraphError):
    status, code = 400, "BadRequest"

    def __init__(self, segment: str) -> None:
        super().__init__(f"Resource not found for the segment '{segment}'.")


class MethodNotAllowed(GraphError):
    status, code = 405, "Request_BadRequest"
    message = "Specified HTTP method is not allowed for the request uri."


class UnsupportedQuery(GraphError):
    status, code, message = 400, "Request_UnsupportedQuery", "Unsupported Query."


class InvalidFilter(GraphError):
    status, code = 400, "BadRequest"

    def __init__(self, detail: str) -> None:
        super().__init__(f"Invalid filter clause: {detail}")


class InvalidAccessTokenVersion(GraphError):
    status, code, message = 400, "InvalidAccessTokenVersion", "One or more properties contains invalid values."


class CredentialLifetimePolicy(GraphError):
    status, code = 400, "CredentialInvalidLifetimeAsPerAppPolicy"

    def __init__(self, policy_id: str) -> None:
        msg = f"Credential lifetime exceeds the max value allowed as per assigned policy '{policy_id}'."
        super().__init__(msg, details=[{"code": "InvalidKeyEndDate", "message": msg, "target": "EndDate"}])


class ResourceSizeExceeded(GraphError):
    status, code = 400, "Directory_ResourceSizeExceeded"
    message = "The size of the object has exceeded its limit. Please reduce the number of values and retry your request."


class QuotaExceeded(GraphError):
    status, code = 400, "Directory_QuotaExceeded"
    message = (
        "The directory object quota limit for the Principal has been exceeded. Please ask your "
        "administrator to increase the quota limit or delete objects to reduce the used quota."
    )


class NoBackingApplication(BadRequest):
    def __init__(self, app_id: str) -> None:
        super().__init__(
            f"The appId '{app_id}' of the service principal does not reference a valid application object."
        )


class InvalidAuthenticationToken(GraphError):
    status, code, message = 401, "InvalidAuthenticationToken", "Access token validation failure."


class AuthorizationRequestDenied(GraphError):
    status, code, message = 403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."


class ResourceNotFound(GraphError):
    status, code = 404, "Request_ResourceNotFound"

    def __init__(self, key: str) -> None:
        super().__init__(
            f"Resource '{key}' does not exist or one of its queried reference-property objects are not present."
        )


class DuplicateKeyValue(GraphError):
    status, code = 409, "Request_MultipleObjectsWithSameKeyValue"


class TooManyRequests(GraphError):
    status, code, message = 429, "TooManyRequests", "Please retry again later."


class GeneralException(GraphError):
    status, code, message = 500, "generalException", "An unspecified error has occurred."


class ServiceNotAvailable(GraphError):
    status, code = 503, "serviceNotAvailable"
    message = (
        "The service is temporarily unavailable for maintenance or is overloaded. You may repeat the "
        "request after a delay, the length of which may be specified in a Retry-After header."
    )


def graph_error_for_status(status: int) -> type[GraphError]:
    """The error class a bare injected status code stands for."""
    return {
        400: BadRequest, 401: InvalidAuthenticationToken, 403: AuthorizationRequestDenied,
        404: GraphError, 409: DuplicateKeyValue, 429: TooManyRequests, 500: GeneralException,
        503: ServiceNotAvailable,
    }.get(status, GeneralException)


class TokenError(Exception):
    """An error of the login endpoints (OAuth 2.0 body with an AADSTS code)."""

    def __init__(self, status: int, error: str, aadsts: int, description: str) -> None:
        self.status = status
        self.error = error
        self.aadsts = aadsts
        self.description = description
        super().__init__(f"AADSTS{aadsts}: {description}")


def invalid_secret(app_id: str) -> TokenError:
    return TokenError(
        401, "invalid_client", 7000215,
        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret "
        f"value, not the client secret ID, for a secret added to app '{app_id}'.",
    )


def expired_secret(app_id: str) -> TokenError:
    return TokenError(
        401, "invalid_client", 7000222,
        f"The provided client secret keys for app '{app_id}' are expired. Visit the Azure portal to create "
        f"new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials "
        "for added security: https://aka.ms/certCreds.",
    )


def app_not_found(app_id: str, tenant: str) -> TokenError:
    return TokenError(
        400, "unauthorized_client", 700016,
        f"Application with identifier '{app_id}' was not found in the directory '{tenant}'. This can happen "
        "if the application has not been installed by the administrator of the tenant or consented to by "
        "any user in the tenant. You may have sent your authentication request to the wrong tenant.",
    )


def tenant_not_found(tenant: str) -> TokenError:
    return TokenError(
        400, "invalid_tenant", 90002,
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing "
        "into the correct cloud. Check with your subscription administrator, this may happen if there are "
        "no active subscriptions for the tenant.",
    )


def missing_service_principal(app_id: str, tenant: str) -> TokenError:
    return TokenError(
        401, "invalid_client", 7000229,
        f"The client application {app_id} is missing service principal in the tenant {tenant}. See "
        "instructions here: https://go.microsoft.com/fwlink/?linkid=2225119",
    )


def missing_credential() -> TokenError:
    return TokenError(
        401, "invalid_client", 7000216,
        "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
    )


def public_client_required() -> TokenError:
    return TokenError(
        401, "invalid_client", 7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    )


def invalid_scope(scope: str) -> TokenError:
    return TokenError(
        400, "invalid_scope", 70011,
        f"The provided request must include a 'scope' input parameter. The provided value for the input "
        f"parameter 'scope' is not valid. The scope {scope} is not valid.",
    )


def resource_not_found(resource: str, tenant: str) -> TokenError:
    return TokenError(
        400, "invalid_resource", 500011,
        f"The resource principal named {resource} was not found in the tenant named {tenant}. This can "
        "happen if the application has not been installed by the administrator of the tenant or consented "
        "to by any user in the tenant. You might have sent your authentication request to the wrong tenant.",
    )


def bad_assertion(aadsts: int, description: str, error: str = "invalid_client") -> TokenError:
    return TokenError(401 if error == "invalid_client" else 400, error, aadsts, description)


def unsupported_grant(grant: str) -> TokenError:
    return TokenError(
        400, "unsupported_grant_type", 70003,
        f"The app requested an unsupported grant type '{grant}'.",
    )


def invalid_request(description: str, aadsts: int = 900144) -> TokenError:
    return TokenError(400, "invalid_request", aadsts, description)


def authorization_pending() -> TokenError:
    return TokenError(400, "authorization_pending", 70016, "OAuth 2.0 device flow error. Authorization is pending. Continue polling.")


def authorization_declined() -> TokenError:
    return TokenError(400, "authorization_declined", 70000, "The user has denied access to the scope requested by the client application.")


def expired_device_code() -> TokenError:
    return TokenError(400, "expired_token", 70020, "The provided value for the input parameter 'device_code' is not valid. This device code has expired.")


def bad_device_code() -> TokenError:
    return TokenError(400, "bad_verification_code", 70019, "The provided value for the input parameter 'device_code' is not valid.")


def bad_refresh_token() -> TokenError:
    return TokenError(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")


# ---------------------------------------------------------------- the sign-in (authorize) endpoints
#
# Where an error is delivered is a property of its type: only a RedirectError may travel to the
# redirect URI, and the authorize handler builds that redirect from a request whose client and
# redirect URI were already checked. Everything found before that check is an ErrorPage (v2: the
# emulator's "Sign in" page; Live: a redirect to the emulator's own err.srf) or a LoginRefusal (the
# sign-in form again, with the message). signin.md §2.3-§2.6, §4.4.

class AuthorizeError(Exception):
    to_redirect_uri: bool = False

    def __init__(self, error: str, description: str, aadsts: int | None = None) -> None:
        self.error = error
        self.description = description
        self.aadsts = aadsts
        super().__init__(self.text)

    @property
    def text(self) -> str:
        return f"AADSTS{self.aadsts}: {self.description}" if self.aadsts else self.description


class ErrorPage(AuthorizeError):
    """Shown on the emulator's own page (Live: its err.srf); never sent to the redirect URI."""

    def __init__(self, error: str, description: str, aadsts: int | None = None, *,
                 title: str = "Sign in", heading: str = "Sorry, but we're having trouble signing you in.") -> None:
        super().__init__(error, description, aadsts)
        self.title = title
        self.heading = heading


ADMIN_NOT_BEYOND_LOOPBACK = (
    "This emulator listens beyond loopback, and its sign-in page asks no password: accounts with an "
    "administrator role do not sign in here. Sign in with another account, or run the emulator on loopback.")


class LoginRefusal(AuthorizeError):
    """The login form refuses the account in place, with no redirect (signin.md §2.6)."""

    def __init__(self, message: str) -> None:
        super().__init__("", message)


class RedirectError(AuthorizeError):
    """Sent back to the (already validated) redirect URI with ``state``."""

    to_redirect_uri = True

    def __init__(self, error: str, description: str | None, aadsts: int | None = None, *,
                 subcode: str | None = None) -> None:
        super().__init__(error, description or "", aadsts)
        self.has_description = description is not None
        self.subcode = subcode


UNABLE = "We're unable to complete your request"
NOT_FOR_CONSUMERS = (
    "The client does not exist or is not enabled for consumers. If you are the application developer, "
    "configure a new application through the App Registrations in the Azure Portal at "
    "https://go.microsoft.com/fwlink/?linkid=2083908."
)
LIVE_BAD_REDIRECT = (
    "The provided value for the input parameter 'redirect_uri' is not valid. The expected value is a URI "
    "which matches a redirect URI registered for this client application."
)
PERSONAL_NOT_HERE = "You can't sign in here with a personal account. Use your work or school account instead."
NO_MICROSOFT_ACCOUNT = "We couldn't find a Microsoft account. Try entering your details again, or create an account."
NO_SUCH_WORK_ACCOUNT = (
    "This username may be incorrect. Make sure you typed it correctly. Otherwise, contact your admin."
)


def malformed_tenant(tenant: str) -> ErrorPage:
    return ErrorPage("invalid_request", f"Specified tenant identifier '{tenant}' is neither a valid DNS name, "
                     "nor a valid external domain.", 900023)


def unknown_tenant_page(tenant: str) -> ErrorPage:
    error = tenant_not_found(tenant)
    return ErrorPage("invalid_request", error.description, error.aadsts)


def missing_parameter_page(name: str) -> ErrorPage:
    return ErrorPage("invalid_request", f"The request body must contain the following parameter: '{name}'.", 900144)


def unknown_client_page(app_id: str, directory_name: str) -> ErrorPage:
    error = app_not_found(app_id, directory_name)
    return ErrorPage("unauthorized_client", error.description, error.aadsts)


def not_for_consumers_page() -> ErrorPage:
    return ErrorPage("unauthorized_client", NOT_FOR_CONSUMERS, title=UNABLE, heading=UNABLE)


def no_reply_address_page() -> ErrorPage:
    return ErrorPage("invalid_request", "No reply address provided.", 900971)


def not_absolute_redirect_page() -> ErrorPage:
    return ErrorPage("invalid_request", "'redirect_uri' value must be a valid absolute URI.", 90102)


def redirect_mismatch_page(uri: str, app_id: str) -> ErrorPage:
    return ErrorPage(
        "invalid_request",
        f"The redirect URI '{uri}' specified in the request does not match the redirect URIs configured for "
        f"the application '{app_id}'. Make sure the redirect URI sent in the request matches one added to your "
        "application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more "
        "about how to fix this.", 50011,
    )


def personal_account_page(login: str) -> ErrorPage:
    return ErrorPage(
        "invalid_request",
        f"User account '{login}' is a personal Microsoft account. Personal Microsoft accounts are not supported "
        "for this application unless explicitly invited to an organization. Try signing out and signing back "
        "in with an organizational account.", 500200,
    )


def live_page(error: str, description: str) -> ErrorPage:
    return ErrorPage(error, description, title=UNABLE, heading=UNABLE)


def single_tenant_at_common(app_id: str, name: str) -> RedirectError:
    return RedirectError(
        "invalid_request",
        f"Application '{app_id}'({name}) is not configured as a multi-tenant application. Usage of the /common "
        "endpoint is not supported for such applications created after '10/15/2018'. Use a tenant-specific "
        "endpoint or configure the application to be multi-tenant.", 50194,
    )


def entra_only_at_consumers(app_id: str, name: str) -> RedirectError:
    return RedirectError(
        "invalid_request",
        f"Application '{app_id}'({name}) is configured for use by Microsoft Entra users only. Please do not use "
        "the /consumers endpoint to serve this request.", 9002332,
    )


def consumer_only_app_description(app_id: str, name: str) -> str:
    return (f"Application '{app_id}'({name}) is configured for use by Microsoft Account users only. Please use "
            "the /consumers endpoint to serve this request.")


def consumer_only_at_common() -> RedirectError:
    return RedirectError(
        "invalid_request",
        "The request is not valid for the application's 'userAudience' configuration. In order to use /common/ "
        "endpoint, the application must not be configured with 'Consumer' as the user audience. The "
        "userAudience should be configured with 'All' to use /common/ endpoint.",
    )


def scope_not_on_graph(app_name: str, scope: str) -> RedirectError:
    return RedirectError(
        "invalid_client",
        f"The application '{app_name}' asked for scope '{scope}' that doesn't exist on the resource "
        f"'{GRAPH_RESOURCE_ID}'. Contact the app vendor.", 650053,
    )


GRAPH_RESOURCE_ID = "00000003-0000-0000-c000-000000000000"


def scope_format_invalid(scope: str) -> RedirectError:
    return RedirectError(
        "invalid_scope",
        f"The provided request must include a 'scope' input parameter. The provided value for the input "
        f"parameter 'scope' is not valid. The scope {scope} is not valid. The scope format is invalid. Scope "
        "must be in a valid URI form <https://example/scope> or a valid Guid <guid/scope>.", 70011,
    )


def declined_consent() -> RedirectError:
    return RedirectError("access_denied", "User declined to consent to access the app.", 65004, subcode="cancel")


# -- token endpoint, authorization-code and refresh grants (signin.md §3.4)

def missing_secret() -> TokenError:
    return public_client_required()  # the same AADSTS7000218 text


def public_client_with_secret() -> TokenError:
    return TokenError(401, "invalid_client", 700025,
                      "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.")


def code_expired() -> TokenError:
    return TokenError(400, "invalid_grant", 70008,
                      "The provided authorization code or refresh token has expired due to inactivity.")


def msa_code_invalid(expired: bool = False) -> TokenError:
    text = "The provided value for the 'code' parameter is not valid." + (" The code has expired." if expired else "")
    return TokenError(400, "invalid_grant", 70000, text)


def code_redeemed() -> TokenError:
    return TokenError(400, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed, please retry "
                      "with a new valid code or use an existing refresh token.")


def pkce_mismatch(*, live: bool) -> TokenError:
    """A code issued for a PKCE challenge, redeemed without the matching verifier: 400 invalid_grant,
    AADSTS501481 (signin.md §3.1, §3.4). login.live.com's wording is not captured: the same text, no code."""
    return TokenError(400, "invalid_grant", 0 if live else 501481,
                      "The Code_Verifier doesn't match the code_challenge supplied in the authorization request.")


def reply_address_mismatch(sent: str, original: str) -> TokenError:
    return TokenError(401, "invalid_client", 500112, f"The reply address '{sent}' does not match the reply address "
                      f"'{original}' provided when requesting Authorization code.")


def code_for_other_tenant() -> TokenError:
    return TokenError(400, "invalid_grant", 700005,
                      "Provided Authorization Code is intended to use against other tenant, thus rejected.")


def refresh_inactive(issued: str) -> TokenError:
    return TokenError(400, "invalid_grant", 700082, f"The refresh token has expired due to inactivity. The token "
                      f"was issued on {issued} and was inactive for 90.00:00:00.")


def spa_refresh_expired(issued: str) -> TokenError:
    return TokenError(400, "invalid_grant", 700084, "The refresh token was issued to a single page app (SPA), and "
                      "therefore has a fixed, limited lifetime of 1.00:00:00, which cannot be extended. It is now "
                      "expired and a new sign in request must be sent by the SPA to the sign in page. The token was "
                      f"issued on {issued}.")


def consumer_only_app(app_id: str, name: str) -> TokenError:
    return TokenError(400, "invalid_request", 9002331, consumer_only_app_description(app_id, name))


def token_scope_invalid(scope: str) -> TokenError:
    return TokenError(400, "invalid_scope", 70011,
                      f"The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid.")
