"""Coverage and outage portal: the Flask application factory."""
from __future__ import annotations

from pathlib import Path

from flask import Flask

from portal.config import DEFAULTS, default_database_path


def create_app(config: dict | None = None) -> Flask:
    """Create the portal application; ``config`` overrides the defaults."""
    app = Flask(__name__, instance_relative_config=True, template_folder="web/templates",
                static_folder="web/static")
    app.config.update(DEFAULTS)
    if config:
        app.config.update(config)
    if not app.config.get("DATABASE"):
        app.config["DATABASE"] = str(default_database_path())

    from portal.data import build
    from portal.web import caching, i18n, openapi, security, texts
    from portal.web import request as web
    from portal.web.json_provider import FastJSONProvider
    from portal.web.views import api, claims, context, errors, feeds, interest, listening, pages, status

    app.json = FastJSONProvider(app)
    build.ensure_database(app.config["DATABASE"], Path(app.config["GEODATA_DIR"]))
    web.init_app(app)
    security.init_app(app)
    # Before i18n: after-request hooks run in reverse, so the caching headers see its cookie.
    caching.init_app(app)
    i18n.init_app(app)
    texts.init_app(app)
    errors.init_app(app)
    context.init_app(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    status.init_app(app)
    app.register_blueprint(feeds.bp)
    app.register_blueprint(openapi.bp)
    listening.init_app(app)
    interest.init_app(app)
    claims.init_app(app)
    return app
