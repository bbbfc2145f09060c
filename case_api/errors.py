"""Errors of the case API.

Services raise these; the app turns each into ``{"detail": message}`` with its HTTP status, so a
message must read as advice to the API user.
"""

from __future__ import annotations


class CaseApiError(Exception):
    """Root of every error the case API raises on purpose."""

    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AuthenticationError(CaseApiError):
    """No API key, or one that is unknown or revoked."""

    status_code = 401


class PermissionDeniedError(CaseApiError):
    """The caller's role may not perform this action."""

    status_code = 403


class NotFoundError(CaseApiError):
    """The object does not exist, or exists in a tenant the caller may not see."""

    status_code = 404


class ConflictError(CaseApiError):
    """The request clashes with the current state (duplicate id, already open case, ...)."""

    status_code = 409


class PreconditionFailedError(CaseApiError):
    """The object changed since the version the caller named in ``If-Match``."""

    status_code = 412


class InvalidTransitionError(ConflictError):
    """A case status change that the case workflow does not allow."""


class UnregisteredTenantError(CaseApiError):
    """The request names a tenant that has not been registered."""

    status_code = 422

    def __init__(self, tenant_ids: list[str] | str) -> None:
        ids = [tenant_ids] if isinstance(tenant_ids, str) else sorted(set(tenant_ids))
        self.tenant_ids = ids
        names = ", ".join(repr(t) for t in ids)
        super().__init__(f"unknown tenant {names}: register it first (POST /api/v1/tenants or `soc tenants add`)")


class InvalidRequestError(CaseApiError):
    """The request is well-formed JSON but asks for something impossible."""

    status_code = 422
