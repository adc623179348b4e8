"""Random test shapes shared by the spatial index tests."""
import math

import numpy as np
import shapely


def jagged_polygon(rng, cx: float, cy: float, radii: np.ndarray):
    """Return the repaired polygon through points at random angles around (cx, cy), at ``radii``."""
    angles = np.sort(rng.uniform(0, 2 * math.pi, len(radii)))
    ring = np.column_stack((cx + radii * np.cos(angles), cy + radii * np.sin(angles)))
    return shapely.make_valid(shapely.Polygon(ring))
