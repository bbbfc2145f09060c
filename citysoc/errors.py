"""Error root for the shared package. Errors a user can cause read like advice."""

from __future__ import annotations


class CitySocError(Exception):
    """Base of every error CitySOC raises on purpose."""


class ConfigurationError(CitySocError):
    """Settings or the environment are not usable (missing Java, bad SOC_HOME, ...)."""


class UnknownTenantError(CitySocError):
    """A command named a tenant that is not registered."""

    def __init__(self, tenant: str) -> None:
        super().__init__(f"unknown tenant {tenant!r}: register it first with `soc tenants add {tenant}`")
        self.tenant = tenant


class InvalidTenantIdError(CitySocError):
    """A tenant id does not follow the slug rule."""

    def __init__(self, tenant: str) -> None:
        super().__init__(
            f"invalid tenant id {tenant!r}: use 2-63 lower-case letters, digits and '-', "
            "starting with a letter or digit (e.g. 'northgate-hospital')"
        )
        self.tenant = tenant


class EventStoreError(CitySocError):
    """The event store could not read or write."""


class DetectionServiceError(CitySocError):
    """`soc detect --every` stopped while its last runs were failing (nothing was skipped: the state
    file still names the end of the last finished run)."""
