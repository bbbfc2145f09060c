"""`soc api`: the case API over HTTP, on the embedded database unless configured otherwise."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from citysoc.cli.common import err_console, load_settings
from citysoc.wiring import embedded_case_app


def api(host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000) -> None:
    """Serve the case API (OpenAPI docs at /api/v1/docs)."""
    settings = load_settings()
    application, _keys = embedded_case_app(settings)
    err_console.print(f"case API on http://{host}:{port}/api/v1/docs  (API keys: {settings.secrets_file})")
    uvicorn.run(application, host=host, port=port, log_level="warning")
