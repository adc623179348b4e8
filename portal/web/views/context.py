"""What every template can use: site and region names, labels, language links, local assets."""
from __future__ import annotations

from flask import Flask, abort, request, send_from_directory, url_for
from flask_babel import gettext as _

from portal.web import labels
from portal.web.i18n import lang
from portal.web.request import get_snapshot

# Front-end packages served by the portal itself (no CDN): name -> directory.
VENDOR = {}


def _vendor_dirs() -> dict:
    """Return the directories of the packaged front-end assets."""
    if not VENDOR:
        import xstatic.pkg.leaflet as leaflet

        VENDOR["leaflet"] = leaflet.BASE_DIR
    return VENDOR


def lang_url(code: str) -> str:
    """Return the current page's URL in another language."""
    args = request.args.to_dict()
    args["lang"] = code
    return url_for(request.endpoint or "pages.index", **(request.view_args or {}), **args)


def init_app(app: Flask) -> None:
    """Register the template context and the vendor asset route."""

    @app.get("/static/vendor/<package>/<path:filename>", endpoint="vendor")
    def vendor(package: str, filename: str):
        directory = _vendor_dirs().get(package)
        if directory is None:
            abort(404)
        return send_from_directory(directory, filename, max_age=7 * 24 * 3600)

    @app.context_processor
    def portal_context():
        def region_name() -> str:
            info = get_snapshot().region
            return info.get("region_ru" if lang() == "ru" else "region") or info.get("region") or ""

        def site_name() -> str:
            return _("Coverage and outages")

        def data_as_of():
            return get_snapshot().as_of

        return {
            "region_name": region_name, "site_name": site_name, "data_as_of": data_as_of,
            "lang_url": lang_url,
            "tech_label": labels.as_strings(labels.TECHNOLOGY),
            "direction_to": labels.as_strings(labels.DIRECTION_TO),
            "service_label": labels.as_strings(labels.SERVICE),
            "generated_message": labels.as_strings(labels.GENERATED_MESSAGE),
        }
