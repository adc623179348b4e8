"""The answers the portal gives, as plain dicts: each one renders as a page and as its JSON twin.

Views, feeds and staff scripts call these by one name (``answers.check_point(...)``); the
modules hold them by subject:

- ``towns``: a town's short form, search, the overview of every town;
- ``coverage``: coverage areas as GeoJSON;
- ``places``: one place, coverage and incidents together (the town page, the point check);
- ``incidents``: incident lists, one incident, the incidents page, is a place down, service status,
  the banner, maintenance, availability; texts in the reader's language (``in_language``), the
  provider's contacts and what a missed restoration deadline entitles to (``claim``);
- ``statuspage``: the same status in Statuspage's /api/v2 shapes.
"""
from __future__ import annotations

from portal.answers.coverage import coverage_geojson, coverage_geojson_text, dumps_geojson
from portal.answers.incidents import (
    claim,
    in_language,
    incident_feed,
    incident_item,
    incident_items,
    incident_list,
    incident_report,
    incidents_page,
    maintenance_items,
    place_problem,
    place_status,
    provider,
    service_summary,
    status_banner,
    town_availability,
    town_calendar,
)
from portal.answers.places import check_point, town_report
from portal.answers.statuspage import (
    statuspage_components,
    statuspage_incidents,
    statuspage_maintenances,
    statuspage_status,
    statuspage_summary,
)
from portal.answers.towns import (
    OVERVIEW_SORTS,
    clear_match,
    overview,
    search_towns,
    sort_overview,
    town_brief,
)

__all__ = [
    "OVERVIEW_SORTS", "check_point", "claim", "clear_match", "coverage_geojson", "coverage_geojson_text",
    "dumps_geojson", "in_language", "incident_feed",
    "incident_item", "incident_items", "incident_list", "incident_report", "incidents_page",
    "maintenance_items", "overview", "place_problem", "place_status", "provider", "search_towns",
    "service_summary",
    "sort_overview",
    "status_banner", "statuspage_components", "statuspage_incidents", "statuspage_maintenances",
    "statuspage_status", "statuspage_summary", "town_availability", "town_brief", "town_calendar",
    "town_report",
]
