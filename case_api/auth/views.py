"""User and API key management (admin only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status

from case_api.auth.dependencies import require_roles
from case_api.auth.models import (
    USER_ID_PATTERN,
    ApiKeyCreated,
    ApiKeyIn,
    ApiKeyOut,
    Principal,
    Role,
    UserIn,
    UserOut,
    UserPatch,
)
from case_api.auth.service import (
    create_api_key,
    create_user,
    get_user,
    list_api_keys,
    list_users,
    revoke_api_key,
    update_user,
)
from case_api.bounds import IdPath
from case_api.db import SessionDep

router = APIRouter(prefix="/keys", tags=["api keys"])
users_router = APIRouter(prefix="/users", tags=["users"])

AdminPrincipal = Annotated[Principal, Depends(require_roles(Role.ADMIN))]
UserIdPath = Annotated[str, Path(max_length=100, pattern=USER_ID_PATTERN)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated)
def create_key(key_in: ApiKeyIn, session: SessionDep, admin: AdminPrincipal) -> ApiKeyCreated:
    """A key for ``user_id``; or, with ``role`` (and ``tenant_id``), a user named ``name`` and a key for them."""
    key, secret = create_api_key(session=session, key_in=key_in, actor=admin.actor)
    return ApiKeyCreated.model_validate({**ApiKeyOut.model_validate(key).model_dump(), "secret": secret})


@router.get("", response_model=list[ApiKeyOut])
def list_keys(
    session: SessionDep,
    _admin: AdminPrincipal,
    user_id: Annotated[str | None, Query(max_length=100, description="Only this user's keys")] = None,
) -> list[ApiKeyOut]:
    return [ApiKeyOut.model_validate(key) for key in list_api_keys(session=session, user_id=user_id)]


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_key(key_id: IdPath, session: SessionDep, admin: AdminPrincipal) -> Response:
    revoke_api_key(session=session, key_id=key_id, actor=admin.actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@users_router.post("", status_code=status.HTTP_201_CREATED, response_model=UserOut)
def add_user(user_in: UserIn, session: SessionDep, admin: AdminPrincipal) -> UserOut:
    return UserOut.model_validate(create_user(session=session, user_in=user_in, actor=admin.actor))


@users_router.get("", response_model=list[UserOut])
def get_users(session: SessionDep, _admin: AdminPrincipal) -> list[UserOut]:
    return [UserOut.model_validate(user).model_copy(update={"last_used_at": last})
            for user, last in list_users(session=session)]


@users_router.get("/{user_id}", response_model=UserOut)
def get_one_user(user_id: UserIdPath, session: SessionDep, _admin: AdminPrincipal) -> UserOut:
    return UserOut.model_validate(get_user(session=session, user_id=user_id))


@users_router.patch("/{user_id}", response_model=UserOut)
def patch_user(user_id: UserIdPath, patch: UserPatch, session: SessionDep, admin: AdminPrincipal) -> UserOut:
    """Rename, change the role (and tenant), or disable (``{"disabled": true}``) a user; users are never deleted."""
    return UserOut.model_validate(update_user(session=session, user_id=user_id, patch=patch, actor=admin.actor))
