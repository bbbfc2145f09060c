"""`soc api`: the case API over HTTP, on the embedded database unless configured otherwise."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from citysoc.apiworker import default_workers
from citysoc.cli.common import err_console, load_settings
from citysoc.wiring import embedded_case_app


def api(host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
        workers: Annotated[int | None, typer.Option(
            min=1, max=64,
            help="Server processes (uvicorn workers). Default: one per core on PostgreSQL, one on SQLite.")] = None,
        ) -> None:
    """Serve the case API (OpenAPI docs at /api/v1/docs)."""
    settings = load_settings()
    # Migrates the database and makes the bootstrap keys once, before any worker starts.
    application, _keys = embedded_case_app(settings)
    count = workers if workers is not None else default_workers(settings.database_url)
    err_console.print(f"case API on http://{host}:{port}/api/v1/docs  ({count} worker"
                      f"{'s' if count > 1 else ''}; API keys: {settings.secrets_file})")
    if count == 1:
        uvicorn.run(application, host=host, port=port, log_level="warning")
        return
    application.state.engine.dispose()
    # Each worker process builds its own application (engine, pool, outbox drainer) from the same environment.
    uvicorn.run("citysoc.apiworker:worker_app", factory=True, host=host, port=port, workers=count,
                log_level="warning")

