"""One error renderer for every status: JSON under /api/, an HTML page elsewhere."""
from __future__ import annotations

from flask import Flask, jsonify, make_response, render_template, request
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException

from portal.coverage.places import UnknownTown
from portal.limits import OverBudget, TooLarge
from portal.web.params import BadParam


def _wants_json() -> bool:
    """Return True for API and feed-less machine paths."""
    return request.path.startswith("/api/")


def render_error(status: int, message: str, suggestions: list | None = None, fields: dict | None = None):
    """Render an error as JSON (with any extra ``fields``) or as a page, with the given status."""
    if _wants_json():
        body = {"error": message, **(fields or {})}
        if suggestions is not None:
            body["suggestions"] = [
                {"slug": t.slug, "name": t.name, "name_ru": t.name_ru, "url": f"/towns/{t.slug}"}
                for t in suggestions
            ]
        return jsonify(body), status
    return render_template("errors/error.html", status=status, message=message, suggestions=suggestions or []), status


def init_app(app: Flask) -> None:
    """Register the handlers."""

    @app.errorhandler(BadParam)
    def bad_param(exc: BadParam):
        return render_error(400, str(exc))

    @app.errorhandler(TooLarge)
    def too_large(exc: TooLarge):
        return render_error(400, str(exc), fields={"parameter": exc.param})

    @app.errorhandler(OverBudget)
    def over_budget(exc: OverBudget):
        app.logger.warning("request over its time budget: %s %s", request.method, request.full_path)
        response = make_response(render_error(503, _("This answer is taking too long right now; please try"
                                                     " again in a moment, or ask for less.")))
        response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.errorhandler(UnknownTown)
    def unknown_town(exc: UnknownTown):
        return render_error(404, _("No town called “%(slug)s” here.", slug=exc.name), exc.suggestions)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        messages = {404: _("There is no page at this address."), 405: _("This method is not allowed here.")}
        message = messages.get(exc.code, exc.description or exc.name)
        response = make_response(render_error(exc.code or 500, message))
        # The exception's own headers (a 405's Allow, a 503's Retry-After) belong to the answer too.
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        app.logger.exception("unhandled error")
        return render_error(500, _("Something went wrong on our side; please try again."))
