"""Is a tenant registered? The one question `soc ingest` asks of the case API, answered from the embedded
database without starting the application.

Starting the embedded case API in-process (FastAPI, SQLAlchemy models, migrations) costs about two CPU seconds,
as much as ingesting 100,000 syslog lines, for one primary-key lookup. This module imports nothing of the rest
of the case API. It only ever says yes: when it cannot tell (no database yet, a database it cannot read, a
configured `SOC_DATABASE_URL` or a remote API), the caller asks the case API itself, which migrates the
database and gives the full answer.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

EMBEDDED_DATABASE = "cases.db"  # under SOC_HOME, the embedded default's SQLite file


def registered_in_embedded_database(home: Path, tenant: str) -> bool:
    """True when the embedded database under `home` holds `tenant`; False when it does not or cannot say."""
    path = home / EMBEDDED_DATABASE
    if not path.is_file():
        return False
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as database:
            found = database.execute("SELECT 1 FROM tenants WHERE id = ?", (tenant,)).fetchone()
    except sqlite3.Error:
        return False
    return found is not None
