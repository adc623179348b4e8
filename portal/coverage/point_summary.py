"""What covers one point, per technology, in one compiled call: the core of the point answer.

A point inside a town lies in about ten polygons (areas of several technologies and
statuses, and town extents). Reading each one's attributes as Python objects cost more
than finding them; here the attributes the answer needs are one table of numbers, and the
grid look-up (``portal.locate``) and the reduction over its hits run compiled together.
The answer names areas by index, so the values shown are the areas' own (an integer
speed stays an integer).
"""
from __future__ import annotations

import math

import numba
import numpy as np

from portal.coverage.locate import PolygonIndex, locate_in_grid

# Per technology, five slots of area indices (-1: none): the live area with the highest
# download speed, with the highest upload speed, any live area, any planned area, the
# planned area with the earliest date. After them, the smallest town holding the point.
SLOTS = 5
DOWN, UP, LIVE, PLANNED, EARLIEST = range(SLOTS)
# Columns of the table: technology (index, -1 unknown), status (0 live, 1 planned, -1 other),
# download, upload (NaN unknown), rank of the planned date (-1 none).
TECH, STATUS, DOWN_MBPS, UP_MBPS, DATE_RANK = range(5)


@numba.njit(cache=True)
def _summary(x, y, extra, table, town_area, n_areas, n_tech,
             x0, y0, cell, nx, ny, start, items, inside, bounds, geom_rings, ring_start, xy):
    """Return the slots (see SLOTS) of every technology, then the town, for the point (x, y)."""
    out = np.full(n_tech * SLOTS + 1, -1, np.int64)
    hits = locate_in_grid(x, y, x0, y0, cell, nx, ny, start, items, inside, bounds, geom_rings,
                          ring_start, xy)
    n_hits = len(hits)
    for k in range(n_hits + len(extra)):
        g = hits[k] if k < n_hits else extra[k - n_hits]
        if g >= n_areas:
            # Nested extents: the smallest is the most specific town (the first of equals).
            t = g - n_areas
            best = out[n_tech * SLOTS]
            if best < 0 or town_area[t] < town_area[best] or (town_area[t] == town_area[best] and t < best):
                out[n_tech * SLOTS] = t
            continue
        tech = int(table[g, TECH])
        if tech < 0:
            continue
        base = tech * SLOTS
        if table[g, STATUS] == 0:
            out[base + LIVE] = g
            for slot, column in ((DOWN, DOWN_MBPS), (UP, UP_MBPS)):
                value = table[g, column]
                best = out[base + slot]
                if not math.isnan(value) and (best < 0 or value > table[best, column]):
                    out[base + slot] = g
        elif table[g, STATUS] == 1:
            out[base + PLANNED] = g
            rank = table[g, DATE_RANK]
            if rank >= 0 and (out[base + EARLIEST] < 0 or rank < table[out[base + EARLIEST], DATE_RANK]):
                out[base + EARLIEST] = g
    return out


class PointSummary:
    """The areas' attributes as numbers, next to the grid of areas and town extents."""

    def __init__(self, index: PolygonIndex, areas: list, town_area: np.ndarray,
                 technologies: tuple[str, ...]):
        """Tabulate the areas (the first ``len(areas)`` polygons of the index; towns follow)."""
        self.index = index
        self.technologies = technologies
        code = {t: i for i, t in enumerate(technologies)}
        dates = sorted({a.available_from for a in areas if a.available_from is not None})
        rank = {d: i for i, d in enumerate(dates)}
        status = {"live": 0, "planned": 1}

        def number(v):
            return math.nan if v is None else float(v)

        self.table = np.array(
            [(code.get(a.technology, -1), status.get(a.status, -1), number(a.max_down_mbps),
              number(a.max_up_mbps), rank.get(a.available_from, -1)) for a in areas],
            dtype=np.float64,
        ).reshape(len(areas), 5)
        self.town_area = np.ascontiguousarray(town_area, dtype=np.float64)
        self.n_areas = len(areas)

    def at(self, x: float, y: float) -> list[int]:
        """Return the slots of each technology in order, then the town's index (-1: none)."""
        x, y = float(x), float(y)
        return _summary(x, y, self.index.invalid_containing(x, y), self.table, self.town_area,
                        self.n_areas, len(self.technologies), *self.index.grid).tolist()
