"""API key management (admin only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from case_api.auth.dependencies import require_roles
from case_api.auth.models import ApiKeyCreated, ApiKeyIn, ApiKeyOut, Principal, Role
from case_api.auth.service import create_api_key, list_api_keys, revoke_api_key
from case_api.bounds import IdPath
from case_api.db import SessionDep

router = APIRouter(prefix="/keys", tags=["api keys"])

AdminPrincipal = Annotated[Principal, Depends(require_roles(Role.ADMIN))]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated)
def create_key(key_in: ApiKeyIn, session: SessionDep, _admin: AdminPrincipal) -> ApiKeyCreated:
    key, secret = create_api_key(session=session, key_in=key_in)
    return ApiKeyCreated.model_validate({**ApiKeyOut.model_validate(key).model_dump(), "secret": secret})


@router.get("", response_model=list[ApiKeyOut])
def list_keys(session: SessionDep, _admin: AdminPrincipal) -> list[ApiKeyOut]:
    return [ApiKeyOut.model_validate(key) for key in list_api_keys(session=session)]


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_key(key_id: IdPath, session: SessionDep, _admin: AdminPrincipal) -> Response:
    revoke_api_key(session=session, key_id=key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
