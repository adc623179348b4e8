"""Open GIS files of any format GDAL reads, reproject them to WGS 84, apply a column mapping.

Everything here works on the file as a whole: a problem found at this level
(the file cannot be read, it has no geometry, a required column is missing,
its CRS is unknown) raises ``UnreadableFile`` with one paragraph that names
the file and the problem. Per-feature checks live in ``portal.imports``.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyproj

# Our property names per layer kind; the first ones are required (unless a default is mapped).
FIELDS = {
    "coverage": ("technology", "status", "feature_id", "max_down_mbps", "max_up_mbps",
                 "available_from"),
    "towns": ("name", "slug", "name_ru", "population", "lat", "lon", "alt_names"),
}
REQUIRED = {"coverage": ("technology", "status"), "towns": ("name",)}
SHAPEFILE_NAME_LIMIT = 10  # DBF field names are cut to 10 characters
MAPPING_KEYS = {"columns", "values", "defaults", "layer", "assume_crs"}


class ImportFailure(Exception):
    """Anything that stops an import; the message is written for staff, not developers."""


class UnreadableFile(ImportFailure):
    """The file as a whole cannot be used (unreadable, no geometry, missing column, no CRS)."""


class BadMapping(ImportFailure):
    """The mapping file is not valid JSON or not in the documented shape."""


@dataclass
class Mapping:
    """How a file's columns and values translate to ours (see docs/importing.md)."""

    columns: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, object]] = field(default_factory=dict)
    defaults: dict[str, object] = field(default_factory=dict)
    layer: str | None = None
    assume_crs: str | None = None
    source: str | None = None

    def lookup_value(self, column: str, value: object) -> object:
        """Translate one cell through ``values[column]``: exact text first, then any case."""
        table = self.values.get(column)
        if not table or value is None:
            return value
        key = cell_text(value)
        if key in table:
            return table[key]
        folded = {str(k).strip().casefold(): v for k, v in table.items()}
        return folded.get(key.strip().casefold(), value)


def cell_text(value: object) -> str:
    """Return a cell as the text a mapping key would spell (50.0 -> '50')."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def load_mapping(source: str | Path | dict | Mapping | None, kind: str) -> Mapping:
    """Return a Mapping from a JSON file, a dict, or an existing Mapping (None: the identity)."""
    if source is None:
        return Mapping()
    if isinstance(source, Mapping):
        return source
    name = None
    if isinstance(source, dict):
        data = source
    else:
        name = Path(source).name
        try:
            data = json.loads(Path(source).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BadMapping(f"mapping file {source} does not exist.") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadMapping(f"mapping file {source} is not valid JSON ({exc}).") from None
    label = name or "the mapping"
    if not isinstance(data, dict):
        raise BadMapping(f"{label} must be a JSON object with keys {sorted(MAPPING_KEYS)}.")
    unknown = set(data) - MAPPING_KEYS - {"comment", "_comment", "kind"}
    if unknown:
        raise BadMapping(
            f"{label} has unknown key(s) {sorted(unknown)}; the keys are {sorted(MAPPING_KEYS)}."
        )
    ours = set(FIELDS[kind])
    for key in ("columns", "values", "defaults"):
        part = data.get(key, {})
        if not isinstance(part, dict):
            raise BadMapping(f'{label}: "{key}" must be an object, not {type(part).__name__}.')
        wrong = set(part) - ours
        if wrong:
            raise BadMapping(
                f'{label}: "{key}" names {sorted(wrong)}, which are not fields of a {kind} layer;'
                f" the fields are {', '.join(FIELDS[kind])}."
            )
    for col, theirs in data.get("columns", {}).items():
        if not isinstance(theirs, str):
            raise BadMapping(f'{label}: "columns"."{col}" must be a column name (a string).')
    for col, table in data.get("values", {}).items():
        if not isinstance(table, dict):
            raise BadMapping(f'{label}: "values"."{col}" must be an object of their value: ours.')
    return Mapping(
        columns=dict(data.get("columns", {})),
        values={k: {str(a): b for a, b in v.items()} for k, v in data.get("values", {}).items()},
        defaults=dict(data.get("defaults", {})),
        layer=data.get("layer"),
        assume_crs=data.get("assume_crs"),
        source=name,
    )


def gdal_path(path: str | Path) -> str:
    """Return the path GDAL should open: zip archives through ``/vsizip/``."""
    text = str(path)
    if text.startswith(("/vsi", "zip://")):
        return text
    if text.lower().endswith(".zip"):
        return "/vsizip/" + str(Path(text).resolve())
    return text


def file_checksum(path: str | Path) -> str:
    """Return the sha256 of the file's bytes (a Shapefile: of all its sidecar files in order)."""
    p = Path(path)
    parts = [p]
    if p.suffix.lower() == ".shp":
        parts = sorted(q for q in p.parent.glob(p.stem + ".*") if q.is_file())
    digest = hashlib.sha256()
    for part in parts:
        with open(part, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


@dataclass
class OpenedFile:
    """A file read into WGS 84 with our column names, plus what the report says about it."""

    frame: gpd.GeoDataFrame
    info: dict


def _pick_layer(path: str, shown: str, mapping: Mapping) -> tuple[str, str | None]:
    """Return (layer name, geometry type) to read, or raise naming the choices."""
    try:
        listed = [(str(n), t) for n, t in pyogrio.list_layers(path)]
    except Exception as exc:  # pyogrio raises several DataSource/driver errors
        raise UnreadableFile(
            f"{shown} cannot be read as a GIS file: {_gdal_message(exc)}. Check that the file is"
            " complete (not truncated by a download or an e-mail) and in a format GDAL reads"
            " (GeoJSON, GeoPackage, Shapefile or a .zip of one, KML, ...)."
        ) from None
    names = [n for n, _ in listed]
    if mapping.layer is not None:
        for n, t in listed:
            if n == mapping.layer:
                return n, t
        raise UnreadableFile(
            f'{shown} has no layer "{mapping.layer}" (named in the mapping); its layers are'
            f" {', '.join(names) or 'none'}."
        )
    spatial = [(n, t) for n, t in listed if t is not None]
    if not spatial:
        raise UnreadableFile(
            f"{shown} has no geometry: it is a table (layers: {', '.join(names) or 'none'})."
            " Export the layer with its polygons from the GIS tool (GeoPackage, GeoJSON or a"
            " zipped Shapefile), not as a spreadsheet or CSV."
        )
    if len(spatial) > 1:
        raise UnreadableFile(
            f"{shown} holds several layers ({', '.join(n for n, _ in spatial)}); name the one"
            ' to import with "layer" in a mapping file.'
        )
    return spatial[0]


def _gdal_message(exc: Exception) -> str:
    """Return the first line of a GDAL error, without the path it repeats."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.rstrip(".")


def _plainly_degrees(frame: gpd.GeoDataFrame) -> bool:
    """Tell whether every coordinate lies within longitude/latitude ranges."""
    if frame.geometry.isna().all() or frame.geometry.is_empty.all():
        return False
    minx, miny, maxx, maxy = frame.geometry.total_bounds
    return all(map(math.isfinite, (minx, miny, maxx, maxy))) and (
        -180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90
    )


def _to_wgs84(frame: gpd.GeoDataFrame, shown: str, mapping: Mapping, info: dict):
    """Reproject to EPSG:4326; a file without a CRS must be plainly lon/lat or say its CRS."""
    if frame.crs is None:
        if mapping.assume_crs:
            try:
                crs = pyproj.CRS.from_user_input(mapping.assume_crs)
            except pyproj.exceptions.CRSError:
                raise BadMapping(
                    f'"assume_crs": "{mapping.assume_crs}" is not a CRS pyproj knows; write it'
                    ' as "EPSG:32636" or similar.'
                ) from None
            frame = frame.set_crs(crs)
            info["crs"] = crs.to_string()
            info["warnings"].append(f"the file declares no CRS; {crs.to_string()} assumed from the mapping")
        elif _plainly_degrees(frame):
            frame = frame.set_crs(4326)
            info["crs"] = "EPSG:4326"
            info["warnings"].append(
                "the file declares no CRS; its coordinates are all within lon/lat ranges, so"
                " WGS 84 longitude/latitude was assumed"
            )
        else:
            minx, miny, maxx, maxy = frame.geometry.total_bounds
            raise UnreadableFile(
                f"{shown} declares no coordinate reference system and its coordinates"
                f" ({minx:.6g}, {miny:.6g} .. {maxx:.6g}, {maxy:.6g}) are not longitude/latitude"
                " degrees, so they cannot be placed on the map. Export it again with its CRS"
                " (a Shapefile needs its .prj file) or name the CRS in a mapping file, e.g."
                ' "assume_crs": "EPSG:32636".'
            )
    else:
        info["crs"] = frame.crs.to_string()
    if not frame.crs.equals(pyproj.CRS.from_epsg(4326)):
        frame = frame.to_crs(4326)
    return frame


def read_area(path: str | Path):
    """Read the polygons of a GIS file as one WGS 84 geometry (an incident's affected area).

    Raises ``UnreadableFile`` naming the file, and the feature, that cannot be used.
    """
    import shapely

    shown = str(path)
    try:
        frame = gpd.read_file(gdal_path(path))
    except Exception as exc:  # GDAL raises several error types for unreadable files
        raise UnreadableFile(f"{shown}: cannot be read as a GIS file ({_gdal_message(exc)}); give a"
                             " GeoJSON file with the affected polygon") from None
    if frame.empty:
        raise UnreadableFile(f"{shown}: has no features; draw a polygon around the affected place")
    frame = _to_wgs84(frame, shown, Mapping(), {"warnings": []})
    for n, geom in enumerate(frame.geometry, start=1):
        if geom is None or geom.is_empty:
            raise UnreadableFile(f"{shown}: feature {n} has no geometry; every feature must be a polygon")
        if geom.geom_type not in ("Polygon", "MultiPolygon"):
            raise UnreadableFile(f"{shown}: feature {n} is a {geom.geom_type}; expected a Polygon or"
                                 " MultiPolygon around the affected place")
        if not geom.is_valid:
            raise UnreadableFile(f"{shown}: feature {n} is not a valid polygon"
                                 f" ({shapely.is_valid_reason(geom)}); fix it in the GIS tool")
    return shapely.union_all(list(frame.geometry))


def _find_column(columns: list[str], wanted: str) -> str | None:
    """Return the file's column for a name: exact, any case, or cut to 10 characters."""
    if wanted in columns:
        return wanted
    by_fold = {c.casefold(): c for c in columns}
    if wanted.casefold() in by_fold:
        return by_fold[wanted.casefold()]
    cut = wanted[:SHAPEFILE_NAME_LIMIT].casefold()
    return by_fold.get(cut)


def open_file(path: str | Path, kind: str, mapping: Mapping) -> OpenedFile:
    """Read the file into WGS 84 and rename/translate its columns to ours."""
    shown = Path(str(path)).name
    if not str(path).startswith("/vsi") and not Path(path).exists():
        raise UnreadableFile(f"{path} does not exist.")
    target = gdal_path(path)
    layer, geom_type = _pick_layer(target, shown, mapping)
    try:
        frame = pyogrio.read_dataframe(target, layer=layer)
    except Exception as exc:
        raise UnreadableFile(
            f"{shown} cannot be read (layer {layer}): {_gdal_message(exc)}. Check that the file is"
            " complete and not damaged; a GeoJSON cut short by a download is a common cause."
        ) from None
    if not isinstance(frame, gpd.GeoDataFrame):
        raise UnreadableFile(f"{shown} has no geometry column in layer {layer}: it is a table.")
    driver = None
    try:
        driver = pyogrio.read_info(target, layer=layer).get("driver")
    except Exception:  # only informative
        pass
    info = {"file": shown, "layer": layer, "driver": driver, "crs": None, "warnings": [],
            "columns_used": {}}
    frame = _to_wgs84(frame, shown, mapping, info)
    columns = [c for c in frame.columns if c != frame.geometry.name]
    out = {}
    for ours in FIELDS[kind]:
        theirs = mapping.columns.get(ours, ours)
        found = _find_column(columns, theirs)
        if found is None and ours in mapping.columns and ours not in REQUIRED[kind]:
            # One mapping serves several exports; an optional column may be absent from some.
            info["warnings"].append(
                f'the mapping reads {ours} from column "{theirs}", which this file does not have:'
                f" {ours} is left empty"
            )
        elif found is None and ours in mapping.columns:
            raise UnreadableFile(
                f'{shown}: the mapping reads {ours} from column "{theirs}", which the file does'
                f" not have; its columns are {', '.join(columns) or 'none'}."
            )
        if found is None:
            if ours in REQUIRED[kind] and ours not in mapping.defaults:
                raise UnreadableFile(
                    f'{shown} has no "{ours}" column (its columns: {", ".join(columns) or "none"}).'
                    f' Give a mapping file with "columns": {{"{ours}": "THEIR_COLUMN"}}, or'
                    f' "defaults": {{"{ours}": "..."}} when every feature has the same value.'
                )
            out[ours] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
        else:
            info["columns_used"][ours] = found
            series = frame[found].astype(object).where(frame[found].notna(), None)
            if ours in mapping.values:
                series = series.map(lambda v, c=ours: mapping.lookup_value(c, v))
            out[ours] = series
        if ours in mapping.defaults:
            out[ours] = out[ours].map(
                lambda v, d=mapping.defaults[ours]: d if v is None or (isinstance(v, str) and not v.strip()) else v
            )
    result = gpd.GeoDataFrame(out, geometry=frame.geometry.values, crs=4326)
    return OpenedFile(result, info)


# --- cells: each parser returns (value, problem or None) -----------------------------------


def is_blank(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (
        isinstance(value, str) and not value.strip())


def number_cell(value, name: str):
    if is_blank(value):
        return None, None
    if isinstance(value, bool):
        return None, f"{name} {value!r} is not a number"
    try:
        number = float(str(value).strip().replace(",", ".")) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        return None, f"{name} {value!r} is not a number"
    if not math.isfinite(number) or number < 0:
        return None, f"{name} {value!r} is not a non-negative number"
    return number, None


def coordinate_cell(value, name: str, limit: float):
    if is_blank(value):
        return None, None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None, f"{name} {value!r} is not a number"
    if not -limit <= number <= limit:
        return None, f"{name} {value!r} is outside -{limit:g}..{limit:g}"
    return number, None


def date_cell(value, name: str):
    if is_blank(value):
        return None, None
    if isinstance(value, datetime):
        return value.date().isoformat(), None
    if isinstance(value, date):
        return value.isoformat(), None
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp from a GeoPackage/Shapefile date field
        return value.to_pydatetime().date().isoformat(), None
    text = str(value).strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text).isoformat(), None
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date().isoformat(), None
    except ValueError:
        return None, f"{name} {value!r} is not an ISO date (YYYY-MM-DD)"


def text_cell(value):
    return None if is_blank(value) else str(value).strip()


def alt_names_cell(value) -> tuple[str, ...]:
    """Parse alternate names: a JSON array, a list, or text separated by ';' or '|' or ','."""
    if is_blank(value):
        return ()
    if isinstance(value, (list, tuple, np.ndarray)):
        if len(value) != 1:
            return tuple(str(v).strip() for v in value if str(v).strip())
        # GDAL reads a column mixing strings and arrays as lists: a lone string arrives as [s].
        value = value[0]
    text = str(value).strip()
    if text.startswith("["):
        try:
            return tuple(str(v).strip() for v in json.loads(text) if str(v).strip())
        except ValueError:
            pass
    return tuple(p.strip() for p in re.split(r"[;|,]", text) if p.strip())


def cell_fid(value) -> str | None:
    """Return a feature id as text (7.0 -> '7')."""
    if is_blank(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
