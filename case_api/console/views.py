"""The console's routes under ``/console``, its static files, and how its errors reach a browser."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

from case_api.console import case_views, member_views, metrics_views, oidc, queue_views, signin_views
from case_api.console.web import CONSOLE_PREFIX, STATIC_DIR, SignInRequiredError, render, sign_in_redirect
from case_api.errors import CaseApiError

HEADINGS = {403: "Not allowed", 404: "Not found", 409: "Conflict", 412: "Changed meanwhile", 422: "Cannot do that",
            503: "Unavailable"}


def install_console(app: FastAPI) -> None:
    """Mount the console on ``app``: its pages, its script and style sheet (served from the package)."""
    router = APIRouter(prefix=CONSOLE_PREFIX, include_in_schema=False)
    for module in (signin_views, oidc, queue_views, case_views, metrics_views, member_views):
        router.include_router(module.router)
    app.include_router(router)
    app.mount(f"{CONSOLE_PREFIX}/static", StaticFiles(directory=STATIC_DIR), name="console-static")


def is_console(request: Request) -> bool:
    return request.url.path == CONSOLE_PREFIX or request.url.path.startswith(CONSOLE_PREFIX + "/")


def console_error(request: Request, exc: CaseApiError) -> Response:
    """A refusal as a page: no session sends the browser to sign in; anything else is an error page with the
    API's status and advice (another tenant's case is 404 here as there)."""
    if isinstance(exc, SignInRequiredError):
        return sign_in_redirect(request)
    user = getattr(request.state, "console_user", None)
    return render(request, "error.html", {
        "user": user, "status_code": exc.status_code, "heading": HEADINGS.get(exc.status_code, "Error"),
        "detail": exc.message,
    }, status_code=exc.status_code)
