"""Tenants are explicit everywhere: an argument, a column, a partition key, a claim."""

from __future__ import annotations

import re

from citysoc.errors import InvalidTenantIdError

TENANT_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


def validate_tenant_id(tenant: str) -> str:
    """Return the tenant id unchanged, or raise with advice when it is not a valid slug.

    The id is used as a partition directory name and in data stream names
    (`logs-<dataset>-<tenant>`), so it must be a lower-case slug.
    """
    if not TENANT_ID_PATTERN.fullmatch(tenant):
        raise InvalidTenantIdError(tenant)
    return tenant
