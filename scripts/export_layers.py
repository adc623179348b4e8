"""Write the live layers to a GeoPackage (two layers in one file) and to GeoJSON files."""
import json
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

import click
import geopandas as gpd
from cli import Refused, db_option, require_database

from portal.data import db, layers

GPKG = "layers.gpkg"


def towns_frame(towns: list) -> gpd.GeoDataFrame:
    """Return towns with the property names an import reads back without a mapping."""
    return gpd.GeoDataFrame({
        "slug": [t.slug for t in towns], "name": [t.name for t in towns],
        "name_ru": [t.name_ru for t in towns], "population": [t.population for t in towns],
        "lat": [t.lat for t in towns], "lon": [t.lon for t in towns],
        "alt_names": [json.dumps(list(t.alt_names), ensure_ascii=False) for t in towns],
    }, geometry=[t.geometry for t in towns], crs=4326)


def coverage_frame(areas: list) -> gpd.GeoDataFrame:
    """Return coverage areas with the contract's property names."""
    return gpd.GeoDataFrame({
        "feature_id": [a.feature_id for a in areas], "technology": [a.technology for a in areas],
        "status": [a.status for a in areas], "max_down_mbps": [a.max_down_mbps for a in areas],
        "max_up_mbps": [a.max_up_mbps for a in areas],
        "available_from": [a.available_from for a in areas],
    }, geometry=[a.geometry for a in areas], crs=4326)


@click.command(epilog="\b\nExample:\n    python scripts/export_layers.py exports/2025-06-30")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite files already in OUT_DIR.")
@db_option
def main(out_dir, force, db_path):
    """Write the live towns and coverage to OUT_DIR/layers.gpkg, towns.geojson, coverage.geojson."""
    require_database(db_path)
    targets = [out_dir / GPKG, out_dir / "towns.geojson", out_dir / "coverage.geojson"]
    present = [str(t) for t in targets if t.exists()]
    if present and not force:
        raise Refused(f"{', '.join(present)} already exist; choose an empty OUT_DIR or add --force.")
    conn = db.connect_readonly(db_path)
    try:  # one read transaction, so both layers come from the same moment
        conn.execute("BEGIN")
        towns, areas = layers.load_towns(conn), layers.load_coverage(conn)
        ids = layers.live_layer_ids(conn)
        conn.execute("COMMIT")
    finally:
        conn.close()
    if not towns and not areas:
        raise Refused(f"database {db_path} has no live layers to export.")
    out_dir.mkdir(parents=True, exist_ok=True)
    for t in targets:
        t.unlink(missing_ok=True)
    frames = {"towns": towns_frame(towns), "coverage": coverage_frame(areas)}
    for name, frame in frames.items():
        if len(frame):
            frame.to_file(out_dir / GPKG, layer=name, driver="GPKG")
            frame.to_file(out_dir / f"{name}.geojson", driver="GeoJSON")
            click.echo(f"{name}: {len(frame)} features from layer {ids[name]}")
    click.echo(f"Wrote {out_dir / GPKG} and GeoJSON files to {out_dir}")


if __name__ == "__main__":
    main()
