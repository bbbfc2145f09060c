"""The documented HTTP client of the case API, against the application in this process."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from fastapi import FastAPI

from citysoc.caseclient import CaseClient, CaseClientError

if TYPE_CHECKING:
    from tests.case_api.conftest import SocApi


def test_a_refused_request_raises_case_client_error_with_the_apis_status_and_advice(
    soc: SocApi, app: FastAPI
) -> None:
    secret = soc.admin["Authorization"].removeprefix("Bearer ")
    with CaseClient.in_process(app, secret) as client:
        client.add_tenant("northgate-hospital", "Northgate Hospital")
        with pytest.raises(CaseClientError) as duplicate:
            client.add_tenant("northgate-hospital", "Again")
        assert duplicate.value.status == 409
        assert "already exists" in duplicate.value.detail

        with pytest.raises(CaseClientError) as unregistered:
            client.add_source(tenant_id="ghost-charity", kind="syslog", name="auth", datasets=[])
        assert unregistered.value.status == 422
        assert "register it first" in str(unregistered.value)
