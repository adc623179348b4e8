"""A point is kept only as the ~100 m cell it falls in, never as submitted.

Cells are rows of ``CELL_M`` metres of latitude; each row is cut into cells about ``CELL_M``
metres wide at its centre latitude. A subscription stores the cell's id and centre; whether
an incident reaches it is asked of the centre, so two people in one cell get the same answer
and neither's exact position is recorded anywhere.
"""
from __future__ import annotations

import math

CELL_M = 100.0
# Metres per degree of latitude (mean; the cell is "about" 100 m by design).
M_PER_DEG_LAT = 111_320.0


def cell_of(lat: float, lon: float, size_m: float = CELL_M) -> tuple[str, float, float]:
    """Return ``(cell id, centre lat, centre lon)`` of the cell holding the point."""
    dlat = size_m / M_PER_DEG_LAT
    row = math.floor((lat + 90.0) / dlat)
    centre_lat = -90.0 + (row + 0.5) * dlat
    # A whole number of cells per row (at least one near the poles, where a row is short).
    row_m = 360.0 * M_PER_DEG_LAT * math.cos(math.radians(centre_lat))
    dlon = 360.0 / max(1, math.floor(row_m / size_m))
    col = min(math.floor((lon + 180.0) / dlon), round(360.0 / dlon) - 1)
    centre_lon = -180.0 + (col + 0.5) * dlon
    return f"{int(size_m)}m:{row}:{col}", round(centre_lat, 6), round(centre_lon, 6)


def cell_bounds(cell_id: str) -> tuple[float, float, float, float]:
    """Return ``(min lon, min lat, max lon, max lat)`` of a cell from its id (for maps and drafted areas)."""
    size, row, col = cell_id.split(":")
    size_m = float(size.removesuffix("m"))
    dlat = size_m / M_PER_DEG_LAT
    south = -90.0 + int(row) * dlat
    row_m = 360.0 * M_PER_DEG_LAT * math.cos(math.radians(south + dlat / 2))
    dlon = 360.0 / max(1, math.floor(row_m / size_m))
    west = -180.0 + int(col) * dlon
    return west, south, west + dlon, south + dlat
