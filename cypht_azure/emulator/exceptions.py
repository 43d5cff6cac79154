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
