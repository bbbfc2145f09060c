"""The case API application factory."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from case_api.alerts.views import router as alerts_router
from case_api.audit.views import router as audit_router
from case_api.auth.service import KeyCache, LastUseThrottle
from case_api.auth.tokens import TokenVerifier
from case_api.auth.views import router as keys_router
from case_api.auth.views import users_router
from case_api.campaigns.rules import load_campaign_rules
from case_api.campaigns.views import router as campaigns_router
from case_api.cases.hot import HotCases
from case_api.cases.queue import QueueCache
from case_api.cases.views import router as cases_router
from case_api.cases.work_views import router as case_work_router
from case_api.console.oidc import ConsoleOidc
from case_api.console.views import HEADINGS, console_error, install_console, is_console
from case_api.console.web import CONSOLE_PREFIX
from case_api.db import (
    API_THREADS,
    make_engine,
    make_read_engine,
    make_session_factory,
    make_write_engine,
    upgrade_database,
)
from case_api.errors import AuthenticationError, CaseApiError, InvalidRequestError
from case_api.health.views import router as health_router
from case_api.incidents.models import IncidentPolicy
from case_api.middleware import AccessLog, Admission, EdgeGuard
from case_api.notifications.flows import drain_in_background, outbox_drainer, soc_contacts
from case_api.notifications.views import router as notifications_router
from case_api.settings import Settings
from case_api.sla.views import router as sla_router
from case_api.sources.views import router as sources_router
from case_api.tenants.views import router as tenants_router
from citysoc.deadletter import DeadLetterStore
from citysoc.health import HealthStore
from citysoc.settings import Settings as StoreSettings
from citysoc.store import ParquetEventStore
from citysoc.store.factory import open_event_store

API_PREFIX = "/api/v1"
DOCS_URL = f"{API_PREFIX}/docs"
# Swagger UI's script and style sheet, as the fastapi-offline package vendors them from swagger-ui-dist:
# served from this origin, so the page works without internet access and under a strict CSP.
SWAGGER_ASSETS = Path(str(resources.files("fastapi_offline") / "static"))

log = structlog.get_logger(__name__)


def create_app(settings: Settings | None = None, *, migrate: bool = True) -> FastAPI:
    """Build the API on ``settings`` (default: from ``SOC_`` environment variables).

    Migrates the database to the newest schema before returning (unless ``migrate`` is false: a server
    worker whose parent process migrated it), so the app is ready for ``TestClient(app)`` in-process as
    well as for uvicorn. ``app.state.engine`` is the engine to dispose when done.
    """
    settings = settings or Settings()
    if not settings.database_url:
        settings.ensure_home()
    engine = make_engine(settings.effective_database_url)
    if migrate:
        upgrade_database(engine)

    app = FastAPI(
        title="CitySOC case API",
        version="1",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=drain_in_background,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    app.state.read_engine = read_engine = make_read_engine(engine)
    app.state.read_session_factory = make_session_factory(read_engine)
    app.state.write_engine = make_write_engine(read_engine)
    app.state.write_session_factory = make_session_factory(app.state.write_engine)
    app.state.queue_cache = QueueCache()
    app.state.last_use = LastUseThrottle()
    app.state.key_cache = KeyCache()
    oidc = settings.oidc()
    app.state.token_verifier = TokenVerifier(oidc) if oidc is not None else None
    app.state.console_oidc = ConsoleOidc(
        oidc, client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else None,
        provider_name=settings.oidc_provider_name, redirect_uri=settings.oidc_redirect_uri,
    ) if oidc is not None and settings.oidc_client_id else None
    # The intake writes these under SOC_HOME; the API only reads them (see the README for production).
    app.state.health_store = HealthStore(settings.health_dir)
    app.state.dead_letters = DeadLetterStore(settings.deadletter_dir)
    # evidence: read only, by event id, from the store SOC_EVENT_STORE chooses (the lake under SOC_HOME by default)
    app.state.event_store = (
        ParquetEventStore(settings.events_dir) if settings.event_store == "parquet"
        else open_event_store(StoreSettings(home=settings.home), dead_letters=app.state.dead_letters))
    app.state.soc_contacts = soc_contacts(settings)
    app.state.outbox_drainer = outbox_drainer(settings, app.state.session_factory)
    app.state.campaign_rules = load_campaign_rules(settings.campaign_rules)
    app.state.incident_policy = IncidentPolicy(
        group_by=settings.case_group_by, window=settings.case_window, risk_threshold=settings.risk_threshold
    )

    api = APIRouter(prefix=API_PREFIX)

    @api.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    routers = (
        tenants_router, sla_router, users_router, keys_router, audit_router, alerts_router, case_work_router,
        cases_router, campaigns_router, sources_router, notifications_router,
    )
    for router in (*routers, health_router):
        api.include_router(router)
    app.include_router(api)
    install_console(app)
    _install_docs(app)
    _install_error_handlers(app)
    # Innermost: the queue and case reads and the case changes it can answer skip FastAPI's routing and dependencies
    # (cases/hot.py).
    app.add_middleware(HotCases, prefix=API_PREFIX)
    app.add_middleware(EdgeGuard, docs_prefix=DOCS_URL, console_prefix=CONSOLE_PREFIX,
                       max_body_bytes=settings.max_body_bytes)
    # Inside the access log, so its duration includes the wait for admission.
    app.add_middleware(Admission, limit=API_THREADS)
    # Outermost: it times and logs every answer, the guard's refusals included.
    app.add_middleware(AccessLog)
    return app


def _install_docs(app: FastAPI) -> None:
    app.mount(f"{DOCS_URL}/static", StaticFiles(directory=SWAGGER_ASSETS), name="docs-static")

    @app.get(DOCS_URL, include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=f"{API_PREFIX}/openapi.json",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{DOCS_URL}/static/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_URL}/static/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_URL}/static/favicon.png",
        )


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CaseApiError)
    async def case_api_error(request: Request, exc: CaseApiError) -> Response:
        if is_console(request):
            return console_error(request, exc)
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthenticationError) else None
        return JSONResponse({"detail": exc.message}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        messages = [f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in errors]
        if is_console(request):
            return console_error(request, InvalidRequestError("invalid request: " + "; ".join(messages)))
        return JSONResponse(
            {
                "detail": "invalid request: " + "; ".join(messages),
                "errors": [_jsonable_error(error) for error in errors],
            },
            status_code=422,
        )

    @app.exception_handler(DataError)
    async def data_error(_request: Request, exc: DataError) -> JSONResponse:
        # The edge checks should have refused the value; say what the database refused, never the value.
        log.warning("database refused a value", error_type=type(exc.orig).__name__)
        return JSONResponse(
            {"detail": "a value in the request cannot be stored (out of range, too long or a NUL character)"},
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if is_console(request) and exc.status_code in HEADINGS:
            error = CaseApiError(str(exc.detail))
            error.status_code = exc.status_code
            return console_error(request, error)
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)


def _jsonable_error(error: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "loc": [str(part) for part in error.get("loc", ())],
        "msg": str(error.get("msg", "")),
        "type": str(error.get("type", "")),
    }
