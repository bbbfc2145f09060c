"""Sign-in and sign-out pages, and the start page that sends each role to its home."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from case_api.console.sessions import SESSION_LIFETIME, csrf_matches, end_session, start_session
from case_api.console.web import (
    CONSOLE_PREFIX,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    CheckedForm,
    ConsoleUserDep,
    redirect,
    render,
    safe_next,
    set_cookie,
)
from case_api.db import SessionDep
from case_api.errors import AuthenticationError

router = APIRouter()


@router.get("/", include_in_schema=False)
def start_page(user: ConsoleUserDep) -> RedirectResponse:
    """City roles start at the queue; a member's users at their organisation's page."""
    if user.is_city:
        return redirect(f"{CONSOLE_PREFIX}/queue")
    return redirect(f"{CONSOLE_PREFIX}/members/{user.principal.tenant_id}")


def _login_page(request: Request, *, next_path: str, error: str | None = None, status_code: int = 200) -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    oidc = getattr(request.app.state, "console_oidc", None)
    response = render(request, "login.html", {"csrf_token": token, "next": next_path, "error": error, "user": None,
                                              "oidc_provider": oidc.provider_name if oidc is not None else None},
                      status_code=status_code)
    set_cookie(response, request, LOGIN_CSRF_COOKIE, token, max_age=3600)
    return response


@router.get("/login", include_in_schema=False)
def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    return _login_page(request, next_path=safe_next(next))


@router.post("/login", include_in_schema=False)
def login(
    request: Request,
    session: SessionDep,
    api_key: Annotated[str, Form(max_length=600)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    next_path = safe_next(next)
    if not csrf_matches(request.cookies.get(LOGIN_CSRF_COOKIE, ""), csrf_token):
        return _login_page(request, next_path=next_path, status_code=403,
                           error="the sign-in form expired or came from another site: try again")
    try:
        secret = start_session(session=session, api_key=api_key.strip(),
                               throttle=getattr(request.app.state, "last_use", None))
    except AuthenticationError as exc:
        return _login_page(request, next_path=next_path, error=f"cannot sign in: {exc.message}", status_code=401)
    response = RedirectResponse(next_path, status_code=303)
    set_cookie(response, request, SESSION_COOKIE, secret, max_age=int(SESSION_LIFETIME.total_seconds()))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=CONSOLE_PREFIX)
    return response


@router.post("/logout", include_in_schema=False)
def logout(session: SessionDep, user: ConsoleUserDep, _form: CheckedForm) -> RedirectResponse:
    end_session(session=session, session_id=user.session_id)
    response = redirect(f"{CONSOLE_PREFIX}/login")
    response.delete_cookie(SESSION_COOKIE, path=CONSOLE_PREFIX)
    return response
