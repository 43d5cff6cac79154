"""Shapes of the directory objects as Graph v1.0 returns them (graph.md §2.1, §4.1).

Functions return fresh dicts (faster than deep copies when seeding thousands).
Keys starting with ``_`` are the emulator's private bookkeeping and are
never rendered.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import uuid
from typing import Any

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
MICROSOFT_TENANT_ID = "f8cdef31-a31e-4b4a-93e4-5f571e91255a"
ARM_RESOURCES = ("https://management.azure.com", "https://management.core.windows.net")
GRAPH_RESOURCES = ("https://graph.microsoft.com", GRAPH_APP_ID)

# Microsoft Graph permission ids (graph.md §1.2).
GRAPH_SCOPES: dict[str, str] = {
    "offline_access": "7427e0e9-2fba-42fe-b0c0-848c9e6a8182",
    "openid": "37f7f235-527c-4136-accd-4a02d197296e",
    "email": "64a6cdd6-aab1-4aaf-94b8-3cc8405e90d0",
    "profile": "14dad69e-099b-42c9-810b-d002981feec1",
    "User.Read": "e1fe6dd8-ba31-4d61-89e7-88639da4683d",
    "IMAP.AccessAsUser.All": "652390e4-393a-48de-9484-05f9b1212954",
    "SMTP.Send": "258f6531-6087-4cc4-bb90-092c5fb3ed3f",
    "POP.AccessAsUser.All": "d7b7f2d9-0f45-4ea1-9d42-e50810c06991",
    "EWS.AccessAsUser.All": "9769c687-087d-48ac-9cb3-c37dde652038",
    "Mail.Send": "e383f46e-2787-4529-855e-0e479a3ffac0",
    "Application.Read.All": "c79f8feb-a9db-4090-85f9-90d820caa0eb",
    "Application.ReadWrite.All": "bdfbf15f-ee85-4955-8675-146e8e5296b5",
    "DelegatedPermissionGrant.ReadWrite.All": "41ce6ca6-6826-4807-84f1-1c82854f7ee5",
    "AppRoleAssignment.ReadWrite.All": "84bccea3-f856-4a8a-967b-dbe0a3d53a64",
    "Directory.AccessAsUser.All": "0e263e50-5827-48a4-b97c-d940288653c7",
}
GRAPH_ROLES: dict[str, str] = {
    "Application.Read.All": "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30",
    "Application.ReadWrite.All": "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9",
    "Application.ReadWrite.OwnedBy": "18a4783c-866b-4cc7-a460-3d5e5662c884",
    "DelegatedPermissionGrant.ReadWrite.All": "8e8e4742-1d95-4f68-9d56-6ee75648c72a",
    "AppRoleAssignment.ReadWrite.All": "06b708a9-e830-4db3-a914-8e69da51d44f",
}
# Office 365 Exchange Online: only the documented ids (graph.md §1.3).
EXCHANGE_SCOPES: dict[str, str] = {"EWS.AccessAsUser.All": "3b5f3d61-589b-4a3c-a359-5dd4b5ee5bd5"}
EXCHANGE_ROLES: dict[str, str] = {
    "full_access_as_app": "dc890d15-9560-4a4c-9b7f-a736ec74ec40",
    "Exchange.ManageAsApp": "dc50a0fb-09a3-484d-be87-e023b12c6440",
}

SIGN_IN_AUDIENCES = (
    "AzureADMyOrg", "AzureADMultipleOrgs", "AzureADandPersonalMicrosoftAccount", "PersonalMicrosoftAccount",
)
PERSONAL_AUDIENCES = ("AzureADandPersonalMicrosoftAccount", "PersonalMicrosoftAccount")

SECRET_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._~-"


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso7(t: dt.datetime) -> str:
    """Graph's 7-digit fraction used in create responses and defaulted timestamps."""
    t = t.astimezone(dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}0Z"


def parse_time(value: str) -> dt.datetime:
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    # Python < 3.11 accepts at most 6 fractional digits.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
        zone = rest[len(digits):]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"  # 3.10 wants exactly 3 or 6 digits
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed


def new_guid() -> str:
    """A random (version 4) GUID; formatted by hand because seeding makes thousands at once."""
    h = secrets.token_hex(16)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def new_secret_text() -> str:
    """``<3 chars>8Q~<34 chars>`` from [A-Za-z0-9._~-], 40 chars like modern Entra secrets."""
    raw = secrets.token_bytes(37)
    chars = [SECRET_ALPHABET[b % 64] for b in raw]
    return "".join(chars[:3]) + "8Q~" + "".join(chars[3:37])


def grant_id(client_id: str, resource_id: str, principal_id: str | None = None) -> str:
    raw = uuid.UUID(client_id).bytes_le + uuid.UUID(resource_id).bytes_le
    if principal_id:
        raw += uuid.UUID(principal_id).bytes_le
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def application_body(object_id: str, app_id: str, created: str, publisher_domain: str) -> dict[str, Any]:
    """The full default body of POST /applications (2025 capture, field order kept)."""
    return {
        "id": object_id,
        "deletedDateTime": None,
        "appId": app_id,
        "applicationTemplateId": None,
        "disabledByMicrosoftStatus": None,
        "createdDateTime": created,
        "displayName": None,
        "description": None,
        "groupMembershipClaims": None,
        "identifierUris": [],
        "isDeviceOnlyAuthSupported": None,
        "isFallbackPublicClient": None,
        "nativeAuthenticationApisEnabled": None,
        "notes": None,
        "publisherDomain": publisher_domain,
        "serviceManagementReference": None,
        "signInAudience": "AzureADMyOrg",
        "tags": [],
        "tokenEncryptionKeyId": None,
        "uniqueName": None,
        "samlMetadataUrl": None,
        "defaultRedirectUri": None,
        "certification": None,
        "optionalClaims": None,
        "servicePrincipalLockConfiguration": None,
        "requestSignatureVerification": None,
        "addIns": [],
        "api": {
            "acceptMappedClaims": None,
            "knownClientApplications": [],
            "requestedAccessTokenVersion": None,
            "oauth2PermissionScopes": [],
            "preAuthorizedApplications": [],
        },
        "appRoles": [],
        "info": {
            "logoUrl": None, "marketingUrl": None, "privacyStatementUrl": None,
            "supportUrl": None, "termsOfServiceUrl": None,
        },
        "keyCredentials": [],
        "parentalControlSettings": {"countriesBlockedForMinors": [], "legalAgeGroupRule": "Allow"},
        "passwordCredentials": [],
        "publicClient": {"redirectUris": []},
        "requiredResourceAccess": [],
        "verifiedPublisher": {"displayName": None, "verifiedPublisherId": None, "addedDateTime": None},
        "web": {
            "homePageUrl": None,
            "logoutUrl": None,
            "redirectUris": [],
            "implicitGrantSettings": {"enableAccessTokenIssuance": False, "enableIdTokenIssuance": False},
            "redirectUriSettings": [],
        },
        "spa": {"redirectUris": []},
    }


APPLICATION_PROPERTIES = frozenset(application_body("", "", "", "")) | {"logo", "windows", "authenticationBehaviors"}
APPLICATION_READ_ONLY = frozenset(
    {"id", "appId", "createdDateTime", "deletedDateTime", "publisherDomain", "applicationTemplateId",
     "disabledByMicrosoftStatus", "verifiedPublisher", "certification", "passwordCredentials"}
)
# Nested objects whose keys are checked too: property -> allowed keys.
APPLICATION_COMPLEX = {
    "api": {"acceptMappedClaims", "knownClientApplications", "requestedAccessTokenVersion",
            "oauth2PermissionScopes", "preAuthorizedApplications"},
    "info": {"logoUrl", "marketingUrl", "privacyStatementUrl", "supportUrl", "termsOfServiceUrl"},
    "web": {"homePageUrl", "logoutUrl", "redirectUris", "implicitGrantSettings", "redirectUriSettings"},
    "spa": {"redirectUris"},
    "publicClient": {"redirectUris"},
    "parentalControlSettings": {"countriesBlockedForMinors", "legalAgeGroupRule"},
}


def service_principal_body(sp_id: str, app: dict[str, Any], tenant_id: str, created: str) -> dict[str, Any]:
    """POST /servicePrincipals answer shape (graph.md §4.1), mirroring the app."""
    return {
        "id": sp_id,
        "deletedDateTime": None,
        "accountEnabled": True,
        "alternativeNames": [],
        "appDisplayName": app.get("displayName"),
        "appDescription": app.get("description"),
        "appId": app["appId"],
        "applicationTemplateId": None,
        "appOwnerOrganizationId": tenant_id,
        "appRoleAssignmentRequired": False,
        "createdDateTime": created,
        "description": None,
        "disabledByMicrosoftStatus": None,
        "displayName": app.get("displayName"),
        "homepage": (app.get("web") or {}).get("homePageUrl"),
        "loginUrl": None,
        "logoutUrl": (app.get("web") or {}).get("logoutUrl"),
        "notes": None,
        "notificationEmailAddresses": [],
        "preferredSingleSignOnMode": None,
        "preferredTokenSigningKeyThumbprint": None,
        "replyUrls": list((app.get("web") or {}).get("redirectUris") or []),
        "servicePrincipalNames": [app["appId"], *list(app.get("identifierUris") or [])],
        "servicePrincipalType": "Application",
        "signInAudience": app.get("signInAudience"),
        "tags": list(app.get("tags") or []),
        "tokenEncryptionKeyId": None,
        "samlSingleSignOnSettings": None,
        "addIns": [],
        "appRoles": [dict(r) for r in app.get("appRoles") or []],
        "info": dict(app.get("info") or {}),
        "keyCredentials": [],
        "oauth2PermissionScopes": [dict(s) for s in (app.get("api") or {}).get("oauth2PermissionScopes") or []],
        "passwordCredentials": [],
        "resourceSpecificApplicationPermissions": [],
        "verifiedPublisher": {"displayName": None, "verifiedPublisherId": None, "addedDateTime": None},
    }


SERVICE_PRINCIPAL_PROPERTIES = frozenset(service_principal_body("", {"appId": ""}, "", "")) | {
    "logo", "owners"
}
SERVICE_PRINCIPAL_READ_ONLY = frozenset(
    {"id", "appDisplayName", "appOwnerOrganizationId", "createdDateTime", "deletedDateTime",
     "servicePrincipalType", "signInAudience", "passwordCredentials", "verifiedPublisher",
     "applicationTemplateId", "disabledByMicrosoftStatus"}
)


def user_body(user_id: str, upn: str, display_name: str) -> dict[str, Any]:
    """GET /users/{id} default projection (as recorded)."""
    return {
        "businessPhones": [],
        "displayName": display_name,
        "givenName": None,
        "jobTitle": None,
        "mail": None,
        "mobilePhone": None,
        "officeLocation": None,
        "preferredLanguage": None,
        "surname": None,
        "userPrincipalName": upn,
        "id": user_id,
    }


def permission_scope(value: str, scope_id: str, admin_consent: str) -> dict[str, Any]:
    return {
        "adminConsentDescription": admin_consent,
        "adminConsentDisplayName": admin_consent,
        "id": scope_id,
        "isEnabled": True,
        "type": "User" if value in ("offline_access", "openid", "email", "profile", "User.Read") else "Admin",
        "userConsentDescription": admin_consent,
        "userConsentDisplayName": admin_consent,
        "value": value,
    }


def app_role(value: str, role_id: str) -> dict[str, Any]:
    return {
        "allowedMemberTypes": ["Application"],
        "description": value,
        "displayName": value,
        "id": role_id,
        "isEnabled": True,
        "origin": "Application",
        "value": value,
    }


def strip_private(obj: dict[str, Any]) -> dict[str, Any]:
    """Drop ``_``-prefixed bookkeeping at the top and in credential lists."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if key.startswith("_"):
            continue
        if key in ("passwordCredentials", "keyCredentials") and isinstance(value, list):
            value = [{k: v for k, v in item.items() if not k.startswith("_")} for item in value]
        out[key] = value
    return out
