"""Import a towns or coverage layer from a GIS file: validate, repair, report, store.

``read_layer`` (``layer_read``) turns a file into ``layers.Town`` / ``layers.Area`` records and
a report, without touching any database. ``import_layer`` adds the region check and the
difference from the live layer, then stores the whole layer in one ``db.writing`` transaction,
or nothing (refused file, dry run, crash).
"""
from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import shapely
import sqlalchemy as sa
from tqdm import tqdm

from portal.data import audit, db, layers, migrations, pgportal
from portal.data import statements as sql
from portal.data.engines import is_postgres as is_url
from portal.data.gisfiles import (
    BadMapping,
    ImportFailure,
    Mapping,
    UnreadableFile,
    file_checksum,
    load_mapping,
)
from portal.data.layer_read import LayerRead, read_layer, want_progress
from portal.data.text import BadText, check_text

__all__ = [
    "LayerRead", "ImportResult", "FileRefused", "ImportFailure", "UnreadableFile", "BadMapping",
    "Mapping", "load_mapping", "read_layer", "import_layer", "write_layer", "live_region",
]

# An import may remove at most this share of the live layer's features unless told to replace it
# all: a file holding one polygon would otherwise silently replace the region's coverage.
MAX_REMOVED_SHARE = 0.2


class FileRefused(ImportFailure):
    """Some features cannot be used; nothing was written. ``.result`` has the report (and diff)."""

    def __init__(self, message: str, result: "ImportResult"):
        super().__init__(message)
        self.result = result


class RemovesTooMuch(FileRefused):
    """The file would remove more of the live layer than an import may without ``replace_all``.

    ``.result.diff`` holds the whole difference from the live layer, to show before refusing.
    """


@dataclass
class ImportResult:
    """The outcome of ``import_layer``: report, diff from the live layer, the new layer's id."""

    report: dict
    diff: dict | None = None
    layer_id: int | None = None
    dry_run: bool = False
    replaced_id: int | None = None
    # Features of the live layer the file keeps (same id, slug or shape), adds and removes.
    counts: dict | None = None




def live_region(conn) -> tuple | None:
    """Return the bounds of the live towns layer, the region coverage must lie in."""
    towns = layers.load_towns(conn)
    if not towns:
        return None
    return tuple(shapely.total_bounds([t.geometry for t in towns]).tolist())


class _Counted(list):
    """A list that advances a progress bar as ``store_layer`` iterates over it."""

    def __init__(self, items, bar):
        super().__init__(items)
        self._bar = bar

    def __iter__(self):
        for item in super().__iter__():
            yield item
            self._bar.update(1)


def _measure_shares(db_path, kind: str, features: list, progress: bool) -> tuple[int, dict] | None:
    """Return the town shares of a new layer over the live layer of the other kind, as (its id, shares).

    Measured before the write transaction: at 100,000 polygons this takes tens of seconds,
    which staff writing an incident meanwhile should not wait for. None without that layer.
    """
    from portal.coverage.index import ShareMeter  # the index imports the layer records

    conn = db.connect_readonly(db_path)
    try:
        other = layers.live_layer_ids(conn)["coverage" if kind == "towns" else "towns"]
        if other is None:
            return None
        if kind == "towns":
            meter = ShareMeter.of(layers.load_coverage(conn, other), features)
        else:
            meter = ShareMeter.of(features, layers.load_towns(conn, other))
    finally:
        conn.close()
    with tqdm(total=len(meter.towns), desc="town shares", unit="town", file=sys.stderr,
              disable=not progress, leave=False, mininterval=0.25) as bar:
        return other, meter.all_entries(done=bar.update)


def write_layer(db_path, kind: str, features: list, *, source: str, author: str,
                checksum: str | None = None, as_of: str | None = None, report: dict | None = None,
                progress: bool | None = False) -> int:
    """Store a layer and make it live in one transaction (with an audit row, town shares); return its id."""
    if not is_url(db_path):
        # A database from before shares were stored gets their table here (a PostgreSQL portal
        # is made whole: ``portal.data.portable``).
        migrations.migrate(db_path)
    shares = _measure_shares(db_path, kind, features, bool(progress))
    with db.writing(db_path) as conn:
        with tqdm(total=len(features), desc="writing", unit="feat", file=sys.stderr,
                  disable=not progress, leave=False, mininterval=0.25) as bar:
            layer_id = layers.store_layer(
                conn, kind, _Counted(features, bar), source=source, author=author,
                checksum=checksum, as_of=as_of, report=report, shares=shares,
            )
        audit.record(conn, author=author, action="layer.import", subject=f"layer {layer_id}",
                     detail={"kind": kind, "source": source, "checksum": checksum, "features": len(features)})
    return layer_id


def import_layer(db_path, kind: str, path, *, mapping=None, dry_run: bool = False,
                 skip_invalid: bool = False, author: str, progress: bool | None = False,
                 as_of: str | None = None, create: bool = False, replace_all: bool = False,
                 max_removed_share: float = MAX_REMOVED_SHARE) -> ImportResult:
    """Check a file against the live database and (unless a dry run) make it the live layer.

    Raises UnreadableFile/BadMapping when the file cannot be used at all, FileRefused (with
    the report) when features are refused and ``skip_invalid`` is false, RemovesTooMuch (with
    the difference) when the file would remove more than ``max_removed_share`` of the live
    layer's features and ``replace_all`` is false, and ImportFailure when ``db_path`` is no
    database and ``create`` is false (only then is a new database file made, or an empty
    PostgreSQL database given an empty portal).
    """
    from portal.data.import_report import diff_layers  # the diff pulls in the coverage index

    try:
        author = check_text("author", str(author))
    except BadText as exc:
        raise ImportFailure(str(exc)) from None
    if not author:
        raise ImportFailure("empty author; give who is importing (--author or $PORTAL_AUTHOR)")
    show = want_progress(progress)
    try:
        if is_url(db_path):
            # An existing database: with --create, one holding no portal yet counts as missing.
            missing = create and not pgportal.holds_portal_at(str(db_path))
        else:
            missing = not Path(db_path).exists()
        if missing:
            if dry_run:  # a dry run writes nothing, not even a new empty database
                with tempfile.TemporaryDirectory() as tmp:
                    empty = Path(tmp) / "empty.sqlite"
                    migrations.migrate(empty)
                    return import_layer(empty, kind, path, mapping=mapping, dry_run=True,
                                        skip_invalid=skip_invalid, author=author, progress=progress)
            if not create:
                raise ImportFailure(f"database {db_path} does not exist; give the portal's database (--db),"
                                    " or make a new empty one on purpose with --create")
            if is_url(db_path):
                pgportal.create_empty(str(db_path))
            else:
                Path(db_path).parent.mkdir(parents=True, exist_ok=True)
                migrations.migrate(db_path)
    except pgportal.BuildRefused as exc:
        raise ImportFailure(f"--create: {exc}") from None
    conn = db.connect_readonly(db_path)
    try:
        region = live_region(conn) if kind == "coverage" else None
        read = read_layer(path, kind, mapping, region=region, progress=show)
        report = read.report
        if region is None and kind == "coverage":
            report["notes"].append("no live towns layer: the region check was skipped")
        live = layers.load_towns(conn) if kind == "towns" else layers.load_coverage(conn)
        counts = _kept_added_removed(live, read.features, kind)
        too_much = bool(not replace_all and live and read.features
                    and counts["removed"] > max_removed_share * len(live))
        if too_much:
            report["notes"].append(
                f"WARNING: this file removes {counts['removed']} of the {len(live)} live {kind} features"
                f" ({counts['removed'] / len(live):.0%}); an import stops above {max_removed_share:.0%}"
                " unless run with --replace-all")
        diff = diff_layers(conn, kind, read.features) if dry_run or too_much else None
        if kind == "towns":
            _warn_removed_towns(conn, read.features, report)
    finally:
        conn.close()
    report["checksum"] = file_checksum(path)
    report["skip_invalid"] = skip_invalid
    result = ImportResult(report=report, diff=diff, dry_run=dry_run, counts=counts)
    if report["refused"] and not skip_invalid:
        raise FileRefused(_refusal_message(report), result)
    if not read.features:
        raise FileRefused(f"{report['file']} has no usable {kind} feature; nothing was imported.",
                          result)
    if dry_run:
        return result
    if too_much:
        raise RemovesTooMuch(
            f"{report['file']} would remove {counts['removed']} of the {len(live)} live {kind} features"
            f" ({counts['removed'] / len(live):.0%}) and keep {counts['kept']}; an import may remove at most"
            f" {max_removed_share:.0%} unless told to replace the whole layer, so nothing was imported."
            " Check the difference above; if the file really is the whole new layer, run again with"
            " --replace-all.", result)
    result.layer_id = write_layer(
        db_path, kind, read.features, source=report["file"], author=author,
        checksum=report["checksum"], as_of=as_of or db.iso(db.utcnow()), report=report,
        progress=show,
    )
    conn = db.connect_readonly(db_path)
    try:
        result.replaced_id = layers.layer_info(conn, result.layer_id)["replaced_id"]
    finally:
        conn.close()
    return result


def _kept_added_removed(live: list, features: list, kind: str) -> dict:
    """Count the live features the file keeps, and those it adds and removes (by id, slug or shape)."""
    from portal.data.import_report import feature_keys

    before, after = feature_keys(live, kind), feature_keys(features, kind)
    kept = len(before & after)
    return {"kept": kept, "added": len(after) - kept, "removed": len(before) - kept}


def _refusal_message(report: dict) -> str:
    """Return the error text listing every refused feature."""
    refused = report["refused"]
    usable = report["features_accepted"]
    lines = [f"{report['file']}: {len(refused)} of {report['features_read']} features cannot be"
             f" used, so nothing was imported (--skip-invalid imports the other {usable}):"]
    lines += [f"  {r['id']}: {r['reason']}" for r in refused]
    return "\n".join(lines)


def _warn_removed_towns(conn, features: list, report: dict) -> None:
    """Warn about towns the import drops that incidents still name."""
    live = {t.slug for t in layers.load_towns(conn)}
    removed = live - {t.slug for t in features}
    if not removed:
        return
    named, incidents = sql.table("incident_towns"), sql.table("incidents")
    # Made for these slugs (an import is rare: the statement is not kept).
    rows = sql.run(conn, sql.Statement(
        sa.select(named.c.slug, incidents.c.id, incidents.c.resolved_at)
        .join_from(named, incidents, incidents.c.id == named.c.incident_id)
        .where(named.c.slug.in_(sorted(removed))).order_by(incidents.c.id))).fetchall()
    report["removed_towns_in_incidents"] = [
        {"slug": r[0], "incident": r[1], "active": r[2] is None} for r in rows
    ]
    for r in rows:
        state = "active" if r[2] is None else "resolved"
        report["notes"].append(f"WARNING: town {r[0]!r} is removed but {state} incident {r[1]} names it")
