"""The incident policy the app was built with, as a dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from case_api.incidents.models import IncidentPolicy


def get_incident_policy(request: Request) -> IncidentPolicy:
    policy: IncidentPolicy = request.app.state.incident_policy
    return policy


IncidentPolicyDep = Annotated[IncidentPolicy, Depends(get_incident_policy)]
