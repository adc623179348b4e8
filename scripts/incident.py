"""Open, update and resolve incidents, announce maintenance, list and show them."""
from __future__ import annotations

import sys
from contextlib import closing
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

import click
import shapely
import sqlite_utils
from cli import Refused, author_default, db_option, example, migrated_database

from portal import answers
from portal.config import DEFAULTS
from portal.coverage.places import AmbiguousTown, Gazetteer, UnknownTown
from portal.data import db, layers, migrations
from portal.incidents import writes as incidents
from portal.incidents.reads import IncidentReads
from portal.vocabulary import duration

# Which language the text options are in: the region's (Russian) for --title, --message, --cause and
# --where, English for their -en twins (portal.incidents.language).
LANG_HELP = " In Russian, the region's language (a text without a Cyrillic letter is taken as English)."

TIMES_HELP = ("ISO 8601, e.g. 2026-11-22T19:40 or 2026-11-22T16:40Z; a time without a zone is local "
              "time of the region (Europe/Moscow).")

# Shown at the end of each --help; real commands a member of staff can copy and adapt.
EXAMPLES = {
    "group": 'python scripts/incident.py open --title "No internet in Pechory" --service internet'
             " --town Pechory",
    "open": 'python scripts/incident.py open --title "Нет кабельного ТВ в одном доме" --title-en "No cable TV'
            ' in one building" --service tv --area building.geojson --where "ул. Ленина, 5"'
            ' --where-en "5 Lenina St" --at 2026-11-01T19:40 --message "Мастер уже едет"'
            ' --message-en "A technician is on the way"',
    "update": 'python scripts/incident.py update 12 --status identified --message "Fibre burned'
              ' through on the roof; replacing it" --at 2026-11-02T11:00 --eta 2026-11-02T16:00'
              ' --cause "Roofers working with a torch"',
    "resolve": 'python scripts/incident.py resolve 12 --message "Cable replaced, TV is back"'
               " --at 2026-11-02T15:00",
    "maintenance": 'python scripts/incident.py maintenance --title "Node upgrade" --service internet'
                   " --service tv --town Pskov --start 2026-11-25T01:00 --end 2026-11-25T05:00",
    "edit": 'python scripts/incident.py edit 12 --title "No cable TV in one building on Lenina St"',
    "cancel": 'python scripts/incident.py cancel 14 --message "The upgrade is postponed; a new date will'
              ' follow"',
    "list": "python scripts/incident.py list --all",
    "drafts": "python scripts/incident.py drafts",
    "confirm": "python scripts/incident.py confirm 3",
    "dismiss": 'python scripts/incident.py dismiss 3 --reason "One building; the fault is already known"',
    "show": "python scripts/incident.py show 12",
}


def _example(name: str) -> str:
    """Return the help epilog of a command (its example)."""
    return example(EXAMPLES, name)


def _zone(conn) -> ZoneInfo:
    """Return the region's time zone."""
    return ZoneInfo(db.get_meta(conn).get("timezone") or DEFAULTS["TIMEZONE"])


def _reader(db_path: Path):
    """Open the database read-only (``--db`` was checked to be an existing portal database)."""
    return closing(db.connect_readonly(_migrated(db_path)))


def _migrated(db_path: Path) -> Path:
    """Apply the migrations a database made by an older version lacks; return its path.

    Asked read-only first: an up-to-date database is not opened for writing at all (closing a
    writer would checkpoint its write-ahead log, and a refused command must leave every byte).
    """
    if isinstance(db_path, str):  # a postgresql:// URL: made whole, its migrations are checked, not run
        return migrated_database(db_path)
    with closing(db.connect_readonly(db_path)) as conn:
        pending = migrations.MIGRATIONS.pending(sqlite_utils.Database(conn))
    return migrated_database(db_path) if pending else Path(db_path)


def _time(option: str, text: str | None, zone: ZoneInfo) -> datetime | None:
    """Parse an ISO 8601 option value; a naive time is the region's local time."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise Refused(f"{option} {text!r} is not an ISO 8601 time; write e.g. 2026-11-22T19:40 "
                      "(local time) or 2026-11-22T16:40Z (UTC)") from None
    return value.replace(tzinfo=zone) if value.tzinfo is None else value


def _towns(conn, names) -> list:
    """Resolve town names with the public search; refuse unknown or ambiguous ones."""
    if not names:
        return []
    gazetteer = Gazetteer(layers.load_towns(conn))
    found = []
    for name in names:
        try:
            found.append(gazetteer.resolve(name))
        except AmbiguousTown as exc:
            raise Refused(f"--town: {exc}") from None
        except UnknownTown as exc:
            hint = "" if exc.suggestions else (
                "; give a town's name or slug as the town search on the portal finds it")
            raise Refused(f"--town: {exc}{hint}") from None
    return found


def _say_towns(towns) -> None:
    """Print which towns the names were taken for, since the search forgives typos."""
    if towns:
        click.echo("towns: " + ", ".join(f"{t.name} ({t.slug})" for t in towns))


def _where(where, where_en, files) -> dict:
    """Return the place in words: --where/--where-en, else the names column of the area files."""
    if where is not None or where_en is not None or not files:
        return {"where": where, "where_en": where_en}
    from portal.incidents.area_names import area_names

    try:
        found = area_names(files)
    except Exception as exc:  # GDAL raises several error types; _area already named an unreadable file
        raise Refused(f"--area: the names of {', '.join(map(str, files))} cannot be read ({exc})") from None
    return {"where": (found or {}).get("ru"), "where_en": (found or {}).get("en")}


def _area(files) -> shapely.Geometry | None:
    """Read polygons from GIS files into one WGS 84 area; refuse unreadable or invalid ones."""
    if not files:
        return None
    from portal.data import gisfiles  # geopandas: only for the commands given an area

    try:
        return shapely.union_all([gisfiles.read_area(file) for file in files])
    except gisfiles.ImportFailure as exc:
        raise Refused(f"--area {exc}") from None


def _write(action, *args, **kwargs):
    """Run a write; an IncidentError becomes a refusal with nothing written; then wake the notifier."""
    _migrated(args[0])  # a database made before the latest migration gets it first
    try:
        found = action(*args, **kwargs)
    except incidents.IncidentError as exc:
        raise Refused(str(exc)) from None
    _nudge(args[0])
    return found


def _nudge(db_path) -> None:
    """Ask the notification worker to send what the write recorded (now, and once updates are folded)."""
    from portal import config
    from portal.listening import queue
    from portal.listening.settings import Settings

    settings = Settings.from_config(config.settings({"DATABASE": str(db_path)}))
    if queue.nudge(settings):
        queue.nudge(settings, delay=settings.fold_s + 1)


def _local(text: str | None, zone: ZoneInfo) -> str:
    """Show a stored UTC time in the region's local time with the zone named."""
    if text is None:
        return "-"
    return db.parse_iso(text).astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def _what_and_where(func):
    """Add the options that say which services are hit and where: --service, --town, --area."""
    for option in reversed([
        click.option("--service", "services", multiple=True, required=True,
                     type=click.Choice(incidents.SERVICES), help="Affected service (repeat for several)."),
        click.option("--town", "towns", multiple=True, help="Affected town by name or slug (repeatable)."),
        click.option("--area", "areas", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
                     help="GeoJSON (or any GIS) file with the affected polygon: a building, a street"
                          " (repeatable)."),
    ]):
        func = option(func)
    return func


def _in_two_languages(name: str, text: str, english: str, required: bool = False):
    """Add --NAME (a public text in the region's language, or English) and --NAME-en (English beside it)."""
    def add(func):
        func = click.option(f"--{name}-en", help=english)(func)
        return click.option(f"--{name}", required=required, help=text + LANG_HELP)(func)
    return add


# The affected place in words (streets, buildings).
_place_in_words = _in_two_languages(
    "where", "The affected place in words, e.g. streets and houses (default: the names column of the --area"
    " file, if it has one).", "The affected place in words, in English.")


@click.group(epilog=_example("group"))
def main() -> None:
    """Run incidents and maintenance: what the public status pages, feeds and API show.

    Texts may hold line breaks (kept in messages, spaces elsewhere) but no other control
    character. Every change is in the audit log: python scripts/audit.py.
    """


@main.command("open", epilog=_example("open"))
@db_option
@_in_two_languages("title", "Public headline.", "The headline in English.", required=True)
@_what_and_where
@_place_in_words
@click.option("--kind", type=click.Choice(["outage", "degraded"]), default="outage", show_default=True)
@click.option("--at", help="When it started. " + TIMES_HELP + " Default: now.")
@click.option("--eta", help="Expected restoration. " + TIMES_HELP)
@_in_two_languages("message", "First public update (default: the title).",
                   "The first update in English.")
@_in_two_languages("cause", "Cause, when already known.", "The cause in English.")
@click.option("--author", default=author_default, show_default="$PORTAL_AUTHOR or login name")
def open_command(db_path, title, title_en, services, towns, areas, where, where_en, kind, at, eta, message,
                 message_en, cause, cause_en, author):
    """Open an incident for towns and/or an area; print its id on the last line.

    Public texts are Russian (the region's language) with English twins (--title-en ...); a page
    in a language staff did not write shows the other one, marked as such.
    """
    with _reader(db_path) as conn:
        zone, found = _zone(conn), _towns(conn, towns)
    area = _area(areas)
    incident_id = _write(
        incidents.open_incident, db_path, title=title, services=services, towns=[t.slug for t in found],
        area=area, kind=kind, at=_time("--at", at, zone), eta=_time("--eta", eta, zone),
        message=message, cause=cause, author=author, title_en=title_en, message_en=message_en,
        cause_en=cause_en, **_where(where, where_en, areas))
    _say_towns(found)
    click.echo(f"opened incident {incident_id}: /incidents/{incident_id}")
    click.echo(incident_id)


@main.command("update", epilog=_example("update"))
@db_option
@click.argument("incident_id", type=int)
@click.option("--status", required=True,
              help="investigating, identified, monitoring or resolved (maintenance: as its window says).")
@_in_two_languages("message", "Public text of the update.", "The update in English.", required=True)
@click.option("--at", help="When it happened. " + TIMES_HELP + " Default: now.")
@click.option("--eta", help="New expected restoration (the old one is kept in the history). " + TIMES_HELP)
@_in_two_languages("cause", "Cause, once found.", "The cause in English.")
@click.option("--author", default=author_default, show_default="$PORTAL_AUTHOR or login name")
def update_command(db_path, incident_id, status, message, message_en, at, eta, cause, cause_en, author):
    """Add a public update to an incident: new status, message, ETA or cause."""
    with _reader(db_path) as conn:
        zone = _zone(conn)
    _write(incidents.update_incident, db_path, incident_id, status=status, message=message,
           at=_time("--at", at, zone), eta=_time("--eta", eta, zone), cause=cause, author=author,
           message_en=message_en, cause_en=cause_en)
    click.echo(f"updated incident {incident_id}: {status}")


@main.command("resolve", epilog=_example("resolve"))
@db_option
@click.argument("incident_id", type=int)
@_in_two_languages("message", "Closing public text.", "The closing text in English.", required=True)
@click.option("--at", help="When service was restored. " + TIMES_HELP + " Default: now.")
@click.option("--author", default=author_default, show_default="$PORTAL_AUTHOR or login name")
def resolve_command(db_path, incident_id, message, message_en, at, author):
    """Resolve an incident (or end a maintenance early)."""
    with _reader(db_path) as conn:
        zone = _zone(conn)
    _write(incidents.resolve_incident, db_path, incident_id, message=message,
           at=_time("--at", at, zone), author=author, message_en=message_en)
    click.echo(f"resolved incident {incident_id}")


@main.command("maintenance", epilog=_example("maintenance"))
@db_option
@_in_two_languages("title", "Public headline.", "The headline in English.", required=True)
@_what_and_where
@_place_in_words
@click.option("--start", required=True, help="Window start. " + TIMES_HELP)
@click.option("--end", required=True, help="Window end. " + TIMES_HELP)
@_in_two_languages("message", "Public text (default: the title).", "The public text in English.")
@click.option("--author", default=author_default, show_default="$PORTAL_AUTHOR or login name")
def maintenance_command(db_path, title, title_en, services, towns, areas, where, where_en, start, end,
                        message, message_en, author):
    """Announce a maintenance window; print its id on the last line."""
    with _reader(db_path) as conn:
        zone, found = _zone(conn), _towns(conn, towns)
    area = _area(areas)
    incident_id = _write(
        incidents.schedule_maintenance, db_path, title=title, services=services,
        towns=[t.slug for t in found],
        area=area, start=_time("--start", start, zone), end=_time("--end", end, zone),
        message=message, author=author, title_en=title_en, message_en=message_en,
        **_where(where, where_en, areas))
    _say_towns(found)
    click.echo(f"scheduled maintenance {incident_id}: /incidents/{incident_id}")
    click.echo(incident_id)


@main.command("edit", epilog=_example("edit"))
@db_option
@click.argument("incident_id", type=int)
@_in_two_languages("title", "Corrected public headline.", "Corrected (or first) English headline.")
@_in_two_languages("message", "Corrected text of an update (the latest unless --update says which).",
                   "Corrected (or first) English text of that update.")
@click.option("--update", "update_number", type=int,
              help="Which update --message corrects: its number in `show` (1 is the first).")
@_in_two_languages("cause", "Corrected cause.", "Corrected (or first) English cause.")
@_place_in_words
@click.option("--author", default=author_default, show_default="$PORTAL_AUTHOR or login name")
def edit_command(db_path, incident_id, title, title_en, message, message_en, update_number, cause, cause_en,
                 where, where_en, author):
    """Correct a published title, an update's message or the cause; the audit log keeps both texts.

    Times and statuses stay as published: a new development is an update, not an edit.
    """
    changes = _write(incidents.edit_incident, db_path, incident_id, title=title, message=message,
                     update=update_number, cause=cause, author=author, title_en=title_en,
                     message_en=message_en, cause_en=cause_en, where=where, where_en=where_en)
    for field, change in changes.items():
        where = f" (update {change['update']})" if "update" in change else ""
        click.echo(f"{field}{where}: {change['before']!r} -> {change['after']!r}")
    click.echo(f"corrected incident {incident_id}")


@main.command("cancel", epilog=_example("cancel"))
@db_option
@click.argument("incident_id", type=int)
@_in_two_languages("message", "Public text: why the work is called off, what comes next.",
                   "The same in English.", required=True)
@click.option("--author", default=author_default, show_default="$PORTAL_AUTHOR or login name")
def cancel_command(db_path, incident_id, message, message_en, author):
    """Call off a planned maintenance window that has not begun (it stays in the history as cancelled)."""
    _write(incidents.cancel_maintenance, db_path, incident_id, message=message, author=author,
           message_en=message_en)
    click.echo(f"cancelled maintenance {incident_id}")


@main.command("list", epilog=_example("list"))
@db_option
@click.option("--all", "show_all", is_flag=True, help="Include resolved incidents and past maintenance.")
def list_command(db_path, show_all):
    """List active incidents and upcoming maintenance (with --all: history too)."""
    with _reader(db_path) as conn:
        zone, now = _zone(conn), db.utcnow()
        found = answers.incident_list(IncidentReads.read(conn), now, "all" if show_all else "active")
    if not found:
        click.echo("no incidents" if show_all else "no active incidents or upcoming maintenance")
        return
    rows = [("ID", "KIND", "STATUS", "STARTED", "SERVICES", "WHERE", "TITLE")]
    for i in found:
        where = ", ".join(i["towns"] + (["area"] if i["has_area"] else []))
        rows.append((str(i["id"]), i["kind"], i["status"], _local(i["started_at"], zone),
                     ",".join(i["services"]), where, i["title"]))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]) - 1)]
    for r in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + "  " + r[-1])


@main.command("show", epilog=_example("show"))
@db_option
@click.argument("incident_id", type=int)
def show_command(db_path, incident_id):
    """Show one incident: where, what, deadlines and the timeline in local time."""
    with _reader(db_path) as conn:
        zone, now = _zone(conn), db.utcnow()
        i = answers.incident_report(IncidentReads.read(conn), incident_id, now)
    if i is None:
        raise Refused(f"no incident #{incident_id}; see: python scripts/incident.py list --all")
    click.echo(f"#{i['id']} {i['title']}")
    if i["title_by_lang"]["en"] and i["title_by_lang"]["en"] != i["title"]:
        click.echo(f"  in English: {i['title_by_lang']['en']}")
    for code, text in i["where_by_lang"].items():
        if text:
            click.echo(f"  where ({code}): {text}")
    click.echo(f"  {i['kind']}, {i['status']}; services: {', '.join(i['services'])}")
    click.echo(f"  towns: {', '.join(i['towns']) or '-'}; area: {'yes' if i['has_area'] else 'no'}; "
               f"affected towns: {', '.join(i['affected_towns']) or '-'}")
    if i["kind"] == "maintenance":
        click.echo(f"  window: {_local(i['scheduled_start'], zone)} to {_local(i['scheduled_end'], zone)}")
    else:
        click.echo(f"  started: {_local(i['started_at'], zone)}; resolved: {_local(i['resolved_at'], zone)}")
        click.echo(f"  duration: {duration(i['duration_s'])}; eta: {_local(i['eta'], zone)}")
    if i["cause"]:
        click.echo(f"  cause: {i['cause']}")
    for service, d in i["deadline"].items():
        state = "MISSED" if d["missed"] else "met" if d["remaining_s"] is None else (
            f"{duration(d['remaining_s'])} left")
        click.echo(f"  {service} deadline ({d['hours']} h): {_local(d['due_at'], zone)}, {state}")
    click.echo("  timeline (numbers as edit --update takes them):")
    with _reader(db_path) as conn:
        stored = incidents.stored_updates(conn, incident_id)
    numbers = {}
    for n, row in enumerate(stored, start=1):
        numbers.setdefault((row["at"], row["status"]), []).append(n)
    for u in i["updates"]:
        # Lines the portal adds itself (a window's start and end) have no number: they cannot be edited.
        found = numbers.get((u["at"], u["status"]))
        mark = f"{found.pop(0)}." if found else "-"
        click.echo(f"    {mark:>3} {_local(u['at'], zone)}  {u['status']:<13}  {u['message']}")
    for e in i["eta_history"]:
        click.echo(f"    eta set {_local(e['at'], zone)} -> {_local(e['eta'], zone)}")


@main.command("drafts", epilog=_example("drafts"))
@db_option
@click.option("--all", "show_all", is_flag=True, help="Include confirmed and dismissed drafts.")
def drafts_command(db_path, show_all):
    """List incidents drafted from customers' reports (not public until confirmed)."""
    from portal.listening import reports

    with _reader(db_path) as conn:
        zone = _zone(conn)
        found = reports.drafts(conn, all_states=show_all)
    if not found:
        click.echo("no drafts" if show_all else "no open drafts")
        return
    rows = [("ID", "STATE", "OPENED", "SERVICE", "REPORTERS", "NETWORKS", "USUAL/30MIN", "WHERE")]
    for d in found:
        opened = db.iso(datetime.fromtimestamp(d["opened_at"], ZoneInfo("UTC")))
        where = d["town"] or f"cell {d['cell']}"
        if d["state"] != "draft":
            where += f" ({d['state']}" + (f" as #{d['incident_id']}" if d["incident_id"] else "") + \
                (f": {d['reason']}" if d["reason"] else "") + ")"
        rows.append((str(d["id"]), d["state"], _local(opened, zone), d["service"], str(d["reporters"]),
                     str(d["networks"]), f"{d['usual']:.1f}", where))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]) - 1)]
    for r in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + "  " + r[-1])


@main.command("confirm", epilog=_example("confirm"))
@db_option
@click.argument("draft_id", type=int)
@_in_two_languages("title", "Public headline (default, in both languages: 'Internet down in TOWN (reported by"
                   " customers)').", "The headline in English.")
@_in_two_languages("message", "First public update (default, in both languages: how many reported it).",
                   "The first update in English.")
@click.option("--author", default=author_default, show_default="$PORTAL_AUTHOR or login name")
def confirm_command(db_path, draft_id, title, title_en, message, message_en, author):
    """Publish a draft as a normal incident; its id alone on the last line."""
    from portal.listening import reports

    try:
        with _reader(db_path) as conn:
            reports.get_draft(conn, draft_id)  # refused before any write connection is opened
        incident_id = _write(reports.confirm, db_path, draft_id, author=author, title=title, message=message,
                             title_en=title_en, message_en=message_en)
    except reports.Refused as exc:
        raise Refused(str(exc)) from None
    click.echo(f"draft {draft_id} confirmed as incident:")
    click.echo(str(incident_id))


@main.command("dismiss", epilog=_example("dismiss"))
@db_option
@click.argument("draft_id", type=int)
@click.option("--reason", required=True, help="Why it is not an incident (kept for tuning the rule).")
@click.option("--author", default=author_default, show_default="$PORTAL_AUTHOR or login name")
def dismiss_command(db_path, draft_id, reason, author):
    """Drop a draft; nothing becomes public."""
    from portal.listening import reports

    try:
        with _reader(db_path) as conn:
            reports.get_draft(conn, draft_id)  # refused before any write connection is opened
        reports.dismiss(db_path, draft_id, reason=reason, author=author, at=db.utcnow().timestamp())
    except reports.Refused as exc:
        raise Refused(str(exc)) from None
    click.echo(f"draft {draft_id} dismissed")


if __name__ == "__main__":
    main()
