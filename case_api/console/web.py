"""What every console page shares: the templates, the signed-in user, CSRF-checked forms, timing, redirects."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from case_api.auth.models import Principal
from case_api.auth.service import tenant_scope
from case_api.console.sessions import ConsoleUser, csrf_matches, resume_session
from case_api.db import SessionDep, utcnow
from case_api.errors import CaseApiError, PermissionDeniedError

CONSOLE_PREFIX = "/console"
STATIC_DIR = Path(__file__).resolve().parent / "static"
TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")
#: The session cookie; HttpOnly, SameSite=Lax, Secure when the console is served over TLS.
SESSION_COOKIE = "citysoc_console"
#: The sign-in form's own CSRF token (double submit: cookie and hidden field), before any session exists.
LOGIN_CSRF_COOKIE = "citysoc_console_login"


class SignInRequiredError(CaseApiError):
    """No live console session: the app sends the browser to the sign-in page."""

    status_code = 401


class CsrfError(CaseApiError):
    """A form without this session's CSRF token (or from another site)."""

    status_code = 403


def _relative(moment: datetime | None, now: datetime | None = None) -> str:
    """``in 12 min`` / ``3 h ago``: what the page shows before the script updates it."""
    if moment is None:
        return ""
    seconds = (moment - (now or utcnow())).total_seconds()
    span = abs(seconds)
    if span < 60:
        text = f"{int(span)} s"
    elif span < 3600:
        text = f"{int(span // 60)} min"
    elif span < 86400 * 2:
        text = f"{int(span // 3600)} h {int(span % 3600 // 60)} min"
    else:
        text = f"{int(span // 86400)} d"
    return f"in {text}" if seconds >= 0 else f"{text} ago"


def _iso(moment: datetime | None) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else ""


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else ""


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


TEMPLATES.env.filters.update(relative=_relative, iso=_iso, when=_when, duration=_duration)


def is_tls(request: Request) -> bool:
    """Whether the browser reached the console over TLS. Behind a proxy, uvicorn's ``--proxy-headers`` with
    ``--forwarded-allow-ips`` sets the scheme from ``X-Forwarded-Proto`` of trusted proxies only."""
    return request.url.scheme == "https"


def set_cookie(response: HTMLResponse | RedirectResponse, request: Request, name: str, value: str,
               max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, path=CONSOLE_PREFIX, httponly=True, samesite="lax",
                        secure=is_tls(request))


def get_console_user(request: Request, session: SessionDep) -> ConsoleUser:
    started = time.perf_counter()
    user = resume_session(session=session, secret=request.cookies.get(SESSION_COOKIE, ""))
    request.state.console_session_timing = (started, time.perf_counter())
    if user is None:
        raise SignInRequiredError("sign in to use the console")
    request.state.principal = user.principal  # the access log names the user
    request.state.console_user = user  # an error page still shows who is signed in
    return user


ConsoleUserDep = Annotated[ConsoleUser, Depends(get_console_user)]


def scope_of(user: ConsoleUser) -> frozenset[str] | None:
    """The tenant scope of the signed-in user: the API's one definition (``auth.service.tenant_scope``)."""
    return tenant_scope(user.principal)


def require_worker(user: ConsoleUser) -> Principal:
    if not user.may_work:
        raise PermissionDeniedError(f"the role {user.principal.role.value!r} reads cases but may not change them")
    return user.principal


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    expected = f"{request.url.scheme}://{request.url.netloc}"
    return origin == expected


async def checked_form(request: Request, user: ConsoleUserDep) -> FormData:
    """The posted form, if it carries this session's CSRF token and does not come from another origin."""
    form = await request.form()
    offered = form.get("csrf_token")
    if not _same_origin(request) or not csrf_matches(user.csrf_token, offered if isinstance(offered, str) else None):
        raise CsrfError("the form is stale or came from another site: reload the page and try again")
    return form


CheckedForm = Annotated[FormData, Depends(checked_form)]


def form_text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def form_ints(form: FormData, name: str) -> list[int]:
    numbers = []
    for value in form.getlist(name):
        for part in str(value).replace(",", " ").split():
            if part.isdigit() and 0 < int(part) < 2**31:
                numbers.append(int(part))
    return numbers


class Timer:
    """Named durations for the ``Server-Timing`` header (milliseconds): ``session`` (reading the sign-in
    session, key and user), then the handler's laps, and ``total`` from the session's read to the rendered page."""

    def __init__(self, request: Request | None = None) -> None:
        self.started = time.perf_counter()
        self.parts: list[tuple[str, float]] = []
        timing = getattr(request.state, "console_session_timing", None) if request is not None else None
        if timing is not None:
            self.started = timing[0]
            self.parts.append(("session", (timing[1] - timing[0]) * 1000))
        self._mark = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.parts.append((name, (now - self._mark) * 1000))
        self._mark = now

    def header(self) -> str:
        total = (time.perf_counter() - self.started) * 1000
        return ", ".join([*(f"{name};dur={ms:.1f}" for name, ms in self.parts), f"total;dur={total:.1f}"])


def render(request: Request, template: str, context: Mapping[str, Any], *, status_code: int = 200,
           timer: Timer | None = None) -> HTMLResponse:
    response = TEMPLATES.TemplateResponse(request, template, {"now": utcnow(), **context}, status_code=status_code)
    if timer is not None:
        timer.lap("render")
        response.headers["Server-Timing"] = timer.header()
    return response


def redirect(path: str, params: Mapping[str, Any] | None = None) -> RedirectResponse:
    """303 to a console path (never elsewhere: no open redirect)."""
    query = urlencode({k: v for k, v in (params or {}).items() if v not in (None, "")})
    return RedirectResponse(f"{path}?{query}" if query else path, status_code=303)


def sign_in_redirect(request: Request) -> RedirectResponse:
    target = request.url.path
    if request.method == "GET" and request.url.query:
        target += "?" + request.url.query
    return RedirectResponse(f"{CONSOLE_PREFIX}/login?next={quote(target, safe='')}", status_code=303)


def safe_next(value: str | None) -> str:
    """A console path to go to after signing in; anything else (another host, a scheme) goes to the start page."""
    if value and value.startswith(CONSOLE_PREFIX + "/") and "//" not in value and "\\" not in value:
        return value
    return CONSOLE_PREFIX + "/"
