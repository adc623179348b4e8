"""Town gazetteer and search (names, transliteration, typos)."""
from __future__ import annotations

import bisect
import re
import threading
import unicodedata

import numpy as np
import shapely
from rapidfuzz import fuzz, process
from unidecode import unidecode

from portal.coverage.geo import GEOD, LocalProjection, azimuth_to_compass
from portal.coverage.nearest import BoundaryIndex
from portal.data.layers import Town

# Scores are on rapidfuzz's 0-100 scale; see Gazetteer.search for how they combine.
EXACT = 100.0
PREFIX = 95.0  # the query starts a whole name: autocomplete
WORD_PREFIX = 90.0  # the query starts a later word of a name ("луки")
# A town's alternate names (historic and foreign forms) rank below the names people use for it:
# "Pech" is Pechory before Opochka, one of whose old names is "Pechka".
ALTERNATE = 6.0
PREFIX_TYPO_WEIGHT = 0.9  # a typo inside a prefix counts for less than a whole-name typo
PREFIX_TYPO_MIN_CHARS = 4  # below this one wrong letter is a different word
PREFIX_TYPO_MAX_CHARS = 16  # past this the whole-name scores suffice
SEARCH_MIN = 70.0
SUGGEST_MIN = 55.0
RESOLVE_MIN = 80.0
RESOLVE_MARGIN = 5.0
NEAR_CACHE_SIZE = 8192  # places whose nearest town is remembered (see Gazetteer.towns_near)
MAX_QUERY_CHARS = 100  # longer than any town name; keeps a pasted essay cheap
MAX_RAW_CHARS = 1000

_SURROGATES = re.compile(r"[\ud800-\udfff]")
# Stress accents (Пско́в) and other marks left after NFKC composition; й and ё are composed by then.
_COMBINING = re.compile(r"[\u0300-\u036f\u0483-\u0489\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
# Apostrophes, quotes and primes stand for ь/ъ in transliterations (Nevel’, Pod"yachevo): drop them.
_MARKS = re.compile(r"['\"`´ʹʺʻʼʽ‘’‚‛“”„‟«»′″]")
_SEPARATORS = re.compile(r"[\W_]+")


class UnknownTown(LookupError):
    """No town has this name or slug; ``suggestions`` are the towns it may have meant, best first.

    The one refusal of a town for scripts, writes, the JSON API (404 with "suggestions") and
    pages (404 page with links).
    """

    def __init__(self, name: str, suggestions: list[Town]):
        self.name, self.suggestions = name, list(suggestions)
        hint = f"; did you mean {_describe(self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"unknown town {name!r}{hint}")


class AmbiguousTown(LookupError):
    """Several towns match a name equally well."""

    def __init__(self, name: str, candidates: list[Town]):
        self.name, self.candidates = name, list(candidates)
        super().__init__(f"ambiguous town {name!r}: {_describe(self.candidates)}; give the slug")


def slugify(name: str) -> str:
    """Return a lowercase ASCII slug: 'Velikiye Luki' -> 'velikiye-luki', 'Nevel’' -> 'nevel'."""
    text = unidecode(name.replace("ё", "е").replace("Ё", "Е")).lower()
    text = re.sub(r"['’`ʹ]", "", text)
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def normalize(text: str) -> str:
    """Fold a name for comparison: 'Щёлково-2 ' -> 'щелково 2', 'Nevel’' -> 'nevel'."""
    text = unicodedata.normalize("NFKC", _SURROGATES.sub("", text)).casefold()
    text = _MARKS.sub("", _COMBINING.sub("", text.replace("ё", "е")))
    return _SEPARATORS.sub(" ", text).strip()


def _ascii(folded: str) -> str:
    """Return the Latin transliteration of an already normalized string."""
    # ё is folded before this, so Королёв gives 'korolev', not unidecode's 'koroliov'.
    return normalize(unidecode(folded))


def _script(form: str) -> str:
    """Return the Unicode script of a form's first letter: 'CYRILLIC', 'LATIN', 'CJK', ..."""
    for char in form:
        if char.isalpha():
            return unicodedata.name(char, "?").split(" ")[0]
    return "?"


def _describe(towns: list[Town]) -> str:
    """Return 'slug (Name / Имя, lat, lon), ...' for an error message."""
    parts = []
    for t in towns:
        names = t.name if not t.name_ru or t.name_ru == t.name else f"{t.name} / {t.name_ru}"
        parts.append(f"{t.slug} ({names}, {t.lat:.3f}, {t.lon:.3f})")
    return ", ".join(parts)


class _Forms:
    """Name forms of one script with their towns' indices, laid out for rapidfuzz."""

    def __init__(self, pairs: list[tuple[str, int]]):
        """Keep the forms and precompute what every query would otherwise redo."""
        self.forms = [f for f, _ in pairs]
        # Pairs come in town order, so each town's forms form one run for reduceat.
        self.towns, self.starts = np.unique(np.array([i for _, i in pairs], dtype=np.intp),
                                            return_index=True)
        multi = [(k, " ".join(sorted(f.split()))) for k, f in enumerate(self.forms) if " " in f]
        self.multi_at = np.array([k for k, _ in multi], dtype=np.intp)
        self.multi_sorted = [f for _, f in multi]
        self.cuts = {n: [f[:n] for f in self.forms]
                     for n in range(PREFIX_TYPO_MIN_CHARS, PREFIX_TYPO_MAX_CHARS + 1)}

    def best(self, text: str, cutoff: float, typos: bool) -> np.ndarray:
        """Return the best score of ``text`` for each town in ``self.towns``."""
        best = process.cdist([text], self.forms, scorer=fuzz.ratio, score_cutoff=cutoff)[0]
        if " " in text and self.multi_sorted:
            # token_sort_ratio, with the forms' tokens sorted once at build time.
            swapped = process.cdist([" ".join(sorted(text.split()))], self.multi_sorted,
                                    scorer=fuzz.ratio, score_cutoff=cutoff)[0]
            best[self.multi_at] = np.maximum(best[self.multi_at], swapped)
        if typos and len(text) in self.cuts:
            typo = process.cdist([text], self.cuts[len(text)], scorer=fuzz.ratio,
                                 score_cutoff=min(100.0, cutoff / PREFIX_TYPO_WEIGHT))[0]
            np.maximum(best, typo * PREFIX_TYPO_WEIGHT, out=best)
        return np.maximum.reduceat(best, self.starts)


class Gazetteer:
    """Search towns by name in any script, with typos; built once per towns layer."""

    def __init__(self, towns: list[Town]):
        """Index every name, alternate name and slug in folded and transliterated form."""
        self.towns = sorted(towns, key=lambda t: (normalize(t.name), t.slug))
        self._by_slug: dict[str, Town] = {}
        for t in self.towns:
            # A layer should not repeat a slug; if one does, keep the first rather than fail.
            self._by_slug.setdefault(t.slug, t)
        self._population = np.array([t.population or 0 for t in self.towns], dtype=np.int64)
        # Every name is also indexed transliterated to ASCII; the query is compared as
        # typed with forms of its own script and transliterated with the ASCII forms,
        # so "Себеж" finds 'Sebezh' and "Sebezh" finds 'Себеж'.
        by_script: dict[str, dict[tuple[str, int], None]] = {}
        self._exact: dict[str, set[int]] = {}
        prefixes: dict[tuple[str, int], float] = {}
        for i, t in enumerate(self.towns):
            own = (t.name, t.name_ru, t.slug)
            for k, raw in enumerate((*own, *t.alt_names)):
                folded = normalize(raw) if raw else ""
                if not folded:
                    continue
                lower = ALTERNATE if k >= len(own) else 0.0
                forms = {folded, _ascii(folded)} - {""}
                for form in forms:
                    script = "ASCII" if form.isascii() else _script(form)
                    by_script.setdefault(script, {})[(form, i)] = None
                    self._exact.setdefault(form, set()).add(i)
                    starts = [0] + [m.end() for m in re.finditer(" ", form)]
                    for pos in starts:
                        key = (form[pos:], i)
                        prefixes[key] = max(prefixes.get(key, 0.0), (WORD_PREFIX if pos else PREFIX) - lower)
        self._forms = {script: _Forms(list(pairs)) for script, pairs in by_script.items()}
        ordered = sorted(prefixes.items())
        self._prefix_keys = [k for (k, _), _ in ordered]
        self._prefix_hits = [(i, score) for (_, i), score in ordered]
        # The extents in metres and their tree, made on the first "which town is nearest".
        self._extents = None
        self._near_cache: dict[tuple[float, float], Town | None] = {}
        self._extents_lock = threading.Lock()

    def get(self, slug: str) -> Town | None:
        """Return the town with exactly this slug, or None."""
        return self._by_slug.get(slug) if isinstance(slug, str) else None

    def find(self, slug: str) -> Town:
        """Return the town with exactly this slug, or raise UnknownTown with suggestions."""
        town = self.get(slug)
        if town is None:
            raise self.unknown(slug)
        return town

    def unknown(self, name: str) -> UnknownTown:
        """Return the refusal of a name or slug no town has, with the towns it may have meant."""
        return UnknownTown(name, self.suggest(name) if isinstance(name, str) else [])

    def nearest(self, lon: float, lat: float, outside: bool = False) -> dict | None:
        """Return the town whose extent holds or lies nearest to a point, with how far and which way.

        ``{"town": Town, "distance_m": int, "direction": "W" | None}``: 0 and None when the point
        is inside (nested extents: the smallest holding it); else metres on the ground to the
        nearest point of the extent and the compass direction towards it. None without towns.
        ``outside``: the caller knows the point lies in no extent (the containment test is skipped).
        """
        found = self._nearest_indices([(lon, lat)], outside)
        if found is None:
            return None
        i, inside, edge = found[0]
        towns = self._extent_tree()[2]
        if inside:
            return {"town": towns[i], "distance_m": 0, "direction": None}
        azimuth, _, distance = GEOD.inv(float(lon), float(lat), *edge)
        return {"town": towns[i], "distance_m": int(round(distance)),
                "direction": azimuth_to_compass(azimuth)}

    def towns_near(self, lonlats, outside: bool = False) -> list[Town | None]:
        """Return for each (lon, lat) the town whose extent holds or lies nearest to it, in one search.

        ``outside``: the caller knows no extent holds them (the containment test is skipped).
        Remembered per place: the places asked are the nearest points of coverage, and the far
        ones (a network 30 km away) are the same point for every question in a wide area.
        """
        keys = [(float(lon), float(lat)) for lon, lat in lonlats]
        known = self._near_cache
        todo = [k for k in keys if k not in known]
        if todo:
            found = self._nearest_indices(todo, outside)
            towns = self._extent_tree()[2]
            if len(known) >= NEAR_CACHE_SIZE:
                known.clear()  # a bound, not an LRU: refilled from the next questions
            for k, hit in zip(todo, found or [None] * len(todo)):
                known[k] = towns[hit[0]] if hit is not None else None
        return [known.get(k) for k in keys]

    def _nearest_indices(self, lonlats,
                         outside: bool = False) -> list[tuple[int, bool, tuple | None]] | None:
        """Return (extent index, whether it holds the place, nearest (lon, lat) of its edge if not)
        per (lon, lat); None without towns.
        """
        tree, _metric, towns, projection, areas, edges = self._extent_tree()
        if not towns:
            return None
        if not len(lonlats):
            return []
        xy = [projection.point_to_metric(float(lon), float(lat)) for lon, lat in lonlats]
        found: list = [None] * len(xy)
        # Most places asked about lie in a town: a containment test on prepared extents, then
        # the compiled nearest-edge search for the places outside every town.
        none = np.empty(0, dtype=np.intp)
        point_i, extent_i = tree.query(shapely.points(xy), predicate="intersects") if not outside else (none, none)
        for p, e in zip(point_i.tolist(), extent_i.tolist()):
            # Nested extents: the smallest holds the most specific answer (then the first).
            if found[p] is None or (areas[e], e) < (areas[found[p][0]], found[p][0]):
                found[p] = (e, True, None)
        for p, (x, y) in enumerate(xy):
            if found[p] is None:
                qx, qy, _d, e = edges.nearest_polygon(x, y)
                found[p] = (e, False, projection.metric_to_lonlat(float(qx), float(qy)))
        return found

    def _extent_tree(self):
        """Return (tree, metric extents, their towns, projection, their areas, their edges), made once."""
        if self._extents is None:
            with self._extents_lock:
                if self._extents is None:
                    towns = [t for t in self.towns if t.geometry is not None and not t.geometry.is_empty]
                    geoms = np.empty(len(towns), dtype=object)
                    geoms[:] = [t.geometry for t in towns]
                    bounds = shapely.total_bounds(geoms) if towns else (0.0, 0.0, 0.0, 0.0)
                    projection = LocalProjection.for_bounds(*(float(v) for v in bounds))
                    metric = projection.to_metric(geoms) if towns else geoms
                    shapely.prepare(metric)
                    edges = BoundaryIndex(metric) if towns else None
                    self._extents = (shapely.STRtree(metric), metric, towns, projection,
                                     shapely.area(metric).tolist(), edges)
        return self._extents

    def search(self, query: str, limit: int = 10) -> list[Town]:
        """Return up to ``limit`` towns matching ``query``, best first."""
        return self._ranked(query, limit, SEARCH_MIN, prefixes=True)

    def suggest(self, text: str, limit: int = 5) -> list[Town]:
        """Return towns loosely like ``text`` (a name or mistyped slug) for "did you mean"."""
        return self._ranked(text, limit, SUGGEST_MIN, prefixes=True)

    def resolve(self, name: str) -> Town:
        """Return the one town ``name`` means, or raise UnknownTown / AmbiguousTown."""
        town = self.get(name.strip()) if isinstance(name, str) else None
        if town is not None:
            return town
        # No prefix bonus: a script writing an incident must not take "Pskov" for "Pskovskoye".
        scores = self._scores(name, RESOLVE_MIN, prefixes=False)
        order = self._order(scores, RESOLVE_MIN)
        if not order:
            raise self.unknown(name)
        top = scores[order[0]]
        if top >= EXACT:
            tied = [i for i in order if scores[i] >= EXACT]
        else:
            tied = [i for i in order if scores[i] > top - RESOLVE_MARGIN]
        if len(tied) == 1:
            return self.towns[tied[0]]
        raise AmbiguousTown(name, [self.towns[i] for i in tied])

    def _ranked(self, query: str, limit: int, minimum: float, *, prefixes: bool) -> list[Town]:
        """Return the towns scoring at least ``minimum``, best first, at most ``limit``."""
        if limit <= 0:
            return []
        scores = self._scores(query, minimum, prefixes=prefixes)
        return [self.towns[i] for i in self._order(scores, minimum)[:limit]]

    def _order(self, scores: np.ndarray, minimum: float) -> list[int]:
        """Return town indices scoring at least ``minimum``: score, then population, then name."""
        hits = np.flatnonzero(scores >= minimum)
        # Rounding keeps float noise from hiding a tie that population should break.
        return sorted(hits.tolist(), key=lambda i: (-round(float(scores[i]), 3), -self._population[i], i))

    def _scores(self, query: str, minimum: float, *, prefixes: bool) -> np.ndarray:
        """Return each town's best score (0-100) against ``query``.

        Per name form the score is the best of: exact 100; the query starts the
        form 95 or a later word of it 90 (``prefixes`` only); rapidfuzz ``ratio``
        and ``token_sort_ratio`` of the whole form; and, for queries of 4 to 16
        characters, 0.9 x ``ratio`` against the form cut to the query's length
        (a typo while typing, ``prefixes`` only). Scores below ``minimum`` may
        come back as 0.
        """
        scores = np.zeros(len(self.towns), dtype=np.float64)
        if not isinstance(query, str) or not self.towns:
            return scores
        folded = normalize(query[:MAX_RAW_CHARS])[:MAX_QUERY_CHARS].strip()
        if not folded:
            return scores
        latin = _ascii(folded)[:MAX_QUERY_CHARS].strip()
        variants = [(latin, self._forms.get("ASCII"))]
        if not folded.isascii():
            variants.append((folded, self._forms.get(_script(folded))))
        for text, forms in variants:
            if text and forms is not None:
                best = forms.best(text, minimum, typos=prefixes)
                scores[forms.towns] = np.maximum(scores[forms.towns], best)
        for text in {folded, latin} - {""}:
            if prefixes:
                at = bisect.bisect_left(self._prefix_keys, text)
                while at < len(self._prefix_keys) and self._prefix_keys[at].startswith(text):
                    i, bonus = self._prefix_hits[at]
                    scores[i] = max(scores[i], bonus)
                    at += 1
            for i in self._exact.get(text, ()):
                scores[i] = EXACT
        return scores
