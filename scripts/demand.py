"""Demand for fiber, for staff: set the target of a planned area, export counts for planning in QGIS."""
from __future__ import annotations

import re
import sys
from datetime import date
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

import click
from cli import Refused, db_option, example, migrated_database

from portal.data import db
from portal.listening import interest, store
from portal.listening.subscriptions import known_town

EXAMPLES = {
    "group": "python scripts/demand.py export demand.gpkg",
    "threshold": "python scripts/demand.py threshold pechory 40 --deadline 2027-06-30",
    "export": "python scripts/demand.py export demand.gpkg",
}
# Extensions GDAL writes, and the driver each means (the file name chooses the format).
DRIVERS = {".gpkg": "GPKG", ".csv": "CSV", ".geojson": "GeoJSON", ".json": "GeoJSON",
           ".shp": "ESRI Shapefile", ".kml": "KML", ".fgb": "FlatGeobuf", ".gml": "GML", ".sqlite": "SQLite"}


def _example(name: str) -> str:
    """Return the help epilog of a command (its example)."""
    return example(EXAMPLES, name)


@click.group(epilog=_example("group"))
def main() -> None:
    """Households that asked for fiber: targets per planned area and exports for planning."""


@main.command("threshold", epilog=_example("threshold"))
@db_option
@click.argument("town")
@click.argument("households")
@click.option("--deadline", help="The date (YYYY-MM-DD) by which the target is to be reached.")
def threshold_command(db_path, town, households, deadline):
    """Set the target of HOUSEHOLDS for the planned area TOWN (a town slug); the town page shows progress."""
    path = migrated_database(db_path)
    if not re.fullmatch(r"[1-9][0-9]{0,6}", households):
        raise Refused(f"HOUSEHOLDS must be a whole number above 0, not {households!r}; e.g. 40")
    if deadline is not None:
        try:
            deadline = date.fromisoformat(deadline).isoformat()
        except ValueError:
            raise Refused(f"--deadline must be a date YYYY-MM-DD, not {deadline!r}; e.g. 2027-06-30") \
                from None
    conn = store.connect(path)
    try:
        found = known_town(conn, town)
    finally:
        conn.close()
    if not found:
        raise Refused(f"unknown town {town!r}; give a slug of the live towns layer, e.g. pechory")
    with store.transaction(path) as conn:
        interest.set_threshold(conn, town, int(households), deadline, db.utcnow())
        now = interest.demand(conn, town)
    click.echo(f"{town}: {now['households']} of {now['threshold']} households"
               + (f" by {deadline}" if deadline else ""))


@main.command("export", epilog=_example("export"))
@db_option
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
def export_command(db_path, file, force):
    """Write households per 250 m cell and per town to FILE (.gpkg, .csv: the extension picks the format)."""
    import geopandas as gpd
    from shapely.geometry import Point

    path = migrated_database(db_path)
    driver = DRIVERS.get(file.suffix.lower())
    if driver is None:
        raise Refused(f"FILE {file.name!r}: give an extension GDAL writes: {', '.join(sorted(DRIVERS))}")
    if file.exists() and not force:
        raise Refused(f"FILE {str(file)!r} exists; give --force to replace it")
    conn = store.connect(path)
    try:
        rows = interest.staff_rows(conn)
    finally:
        conn.close()
    columns = ["kind", "cell", "town", "size_m", "households"]
    frame = gpd.GeoDataFrame([{k: r[k] for k in columns} for r in rows], columns=columns,
                             geometry=[Point(r["lon"], r["lat"]) for r in rows], crs="EPSG:4326")
    if file.exists():
        file.unlink()
    # CSV keeps the point as lon/lat columns QGIS reads as "X" and "Y".
    options = {"layer_options": {"GEOMETRY": "AS_XY"}} if driver == "CSV" else {}
    frame.to_file(file, driver=driver, layer="demand" if driver == "GPKG" else None, **options)
    click.echo(f"wrote {len(rows)} row{'s' if len(rows) != 1 else ''} to {file}")


if __name__ == "__main__":
    main()
