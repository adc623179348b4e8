"""Subscriptions on the web: the JSON API, the pages' form, the confirmation and unsubscribe links.

The pages holding the form are cached by nginx, so they carry no per-visitor token. A form
post is accepted when the browser says it comes from this site (``Sec-Fetch-Site:
same-origin``, else an ``Origin`` naming this host), else when it carries the double-submit
token that ``subscribe.js`` fetched from the uncached ``/subscriptions/csrf`` (cookie and field
equal). A JSON post cannot be sent across sites without a CORS preflight this site never
answers, so the API needs no token; both are rate-limited per client address and per e-mail.
"""
from __future__ import annotations

import hmac
import secrets
from contextlib import contextmanager
from urllib.parse import urlsplit

from flask import Blueprint, current_app, jsonify, render_template, request
from flask_babel import gettext as _

from portal.data import db
from portal.listening import queue, ratelimit, store, subscriptions, webhooks
from portal.listening.settings import Settings
from portal.web.i18n import lang, town_name
from portal.web.request import close_db, get_db, get_snapshot

bp = Blueprint("listening", __name__)

CSRF_COOKIE = "csrf"
HONEYPOT = "website"
NO_STORE = {"Cache-Control": "no-store"}


def settings() -> Settings:
    """Return the listening settings of this app (made once)."""
    found = current_app.extensions.get("portal_listening")
    if found is None:
        found = current_app.extensions["portal_listening"] = Settings.from_config(current_app.config)
    return found


@contextmanager
def writing(conn=None):
    """Yield a write transaction on the listening tables (``store.transaction``) for a view.

    The request's read transaction ends first: a commit made while the writer's own process still
    reads an older version cannot be checkpointed, so under a stream of public writes SQLite's
    write-ahead log would never start over, grow by every write, and every commit pay for a
    checkpoint. A later ``get_db()`` reads afresh (and sees the write). ``conn``: a connection
    to write on (a thread's own, for writes on every request); by default one opened for it.
    After the commit a log grown long anyway (other workers' reads) is emptied (``store.shorten_log``).
    """
    close_db()
    path = settings().database
    with store.transaction(conn if conn is not None else path) as write:
        yield write
    store.shorten_log(path)


def client_address() -> str:
    """Return the client's address: the one the trusted proxies saw, else the peer's."""
    hops = int(current_app.config.get("TRUSTED_PROXY_HOPS") or 0)
    if hops:
        forwarded = [a.strip() for a in request.headers.get("X-Forwarded-For", "").split(",") if a.strip()]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return request.remote_addr or "unknown"


def rate_limits() -> dict:
    """Return the rate limits in force (tests set small ones); every public write counts against them."""
    return current_app.config.get("RATE_LIMITS") or ratelimit.LIMITS


_limits = rate_limits  # the name other views used before it was public


def subscribe(data) -> dict:
    """Validate, rate-limit and store one subscription; nudge the worker to send its confirmation."""
    config = settings()
    ratelimit.hit(config, "client", client_address(), rate_limits())
    conn = get_db()
    req = subscriptions.parse(
        data, conn, default_lang=lang(),
        check_webhook=lambda url: webhooks.check_url(url, config.webhook_allow_private))
    secret = db.get_meta(conn).get("listening_key") or ""
    ratelimit.hit(config, "email", ratelimit.email_key(secret, req.address), rate_limits())
    # The real clock, not the page clock tests may pin: unconfirmed requests expire by it.
    with writing() as write:
        made = subscriptions.subscribe(write, req, db.utcnow())
    queue.nudge(config)
    answer = {"status": "pending"}
    if made["secret"]:
        answer["secret"] = made["secret"]
    return answer


def too_many(exc: ratelimit.Limited, page: bool):
    """Answer 429 with Retry-After (a page or JSON), for every public write."""
    message = _("Too many requests; please try again in %(minutes)s min.", minutes=max(1, exc.retry_after // 60))
    headers = {"Retry-After": str(exc.retry_after), **NO_STORE}
    if page:
        return render_template("errors/error.html", status=429, message=message, suggestions=[]), 429, headers
    return jsonify({"error": message}), 429, headers


_too_many = too_many  # the name other views used before it was public


def json_write(write, fields: str):
    """Answer a public write sent as JSON: ``write(data)``'s result, or the response refusing it.

    Returns ``(result, None)``, or ``(None, response)``: 400 naming the field (the body when it
    is not a JSON object; ``fields`` says what it should hold) or 429 with Retry-After.
    """
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        error = f"body: send a JSON object (Content-Type: application/json) with {fields}"
        return None, (jsonify({"error": error, "field": "body"}), 400, NO_STORE)
    try:
        return write(data), None
    except subscriptions.SubscriptionError as exc:
        return None, (jsonify({"error": str(exc), "field": exc.field}), 400, NO_STORE)
    except ratelimit.Limited as exc:
        return None, too_many(exc, page=False)


def form_write(fields: tuple[str, ...], write, done, labels=None, lists: tuple[str, ...] = ()):
    """Answer a public write sent from a page's form; return the response.

    Refused when it comes from another site (403 page); a robot that filled the honeypot field
    is told what it wants to hear, ``done(None)``, and nothing is stored. Otherwise ``write(data)``
    with the form's ``fields`` (``lists``: fields with several values), then ``done(result)``;
    a refused field gets a 400 page naming it (``labels``: field names as people read them),
    a rate limit the 429 page.
    """
    if not same_site():
        message = _("This form was sent from another site, or your browser sent no origin. Reload the page "
                    "and send it again.")
        page = render_template("errors/error.html", status=403, message=message, suggestions=[])
        return page, 403, NO_STORE
    form = request.form
    if form.get(HONEYPOT):
        return done(None)
    data = {k: form.get(k) for k in fields}
    data.update({k: form.getlist(k) for k in lists})
    if data.get("lat") or data.get("lon"):
        data["town"] = None  # "use my location" filled the point: it wins over the page's town
    try:
        result = write(data)
    except subscriptions.SubscriptionError as exc:
        labels = labels or FIELD_LABELS
        label = labels[exc.field]() if exc.field in labels else exc.field
        message = _("Please correct “%(field)s”: %(reason)s", field=label, reason=str(exc))
        page = render_template("errors/error.html", status=400, message=message, suggestions=[])
        return page, 400, NO_STORE
    except ratelimit.Limited as exc:
        return too_many(exc, page=True)
    return done(result)


@bp.post("/api/v1/subscriptions")
def api_subscribe():
    """Subscribe to a town or point by JSON: 202 {"status": "pending"} and a confirmation message."""
    answer, refused = json_write(subscribe, "email, town or lat and lon, services, lang")
    return refused or (jsonify(answer), 202, NO_STORE)


def same_site() -> bool:
    """Return whether a form post comes from this site (see the module's docstring)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site:
        return site in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin and origin != "null":
        allowed = {request.host, urlsplit(settings().base_url).netloc}
        return urlsplit(origin).netloc in allowed
    cookie, field = request.cookies.get(CSRF_COOKIE), request.form.get("csrf_token")
    return bool(cookie) and bool(field) and hmac.compare_digest(cookie, field)


FIELD_LABELS = {
    "email": lambda: _("E-mail"), "town": lambda: _("Town"), "lat": lambda: _("Latitude"),
    "lon": lambda: _("Longitude"), "services": lambda: _("Services"), "lang": lambda: _("Language"),
    "webhook": lambda: _("Webhook"), "body": lambda: _("Form"),
    "service": lambda: _("Service"),
}


@bp.post("/subscriptions")
def form_subscribe():
    """Subscribe from a page's form: 202 page "check your e-mail", or 400 naming the field."""
    return form_write(("email", "town", "lat", "lon", "lang"), subscribe,
                      lambda _answer: (render_template("listening/pending.html"), 202, NO_STORE),
                      lists=("services",))


@bp.get("/subscriptions/csrf")
def csrf_token():
    """Give the form its double-submit token (cookie and JSON), never cached."""
    token = request.cookies.get(CSRF_COOKIE)
    if not token or len(token) != 43:
        token = secrets.token_urlsafe(32)
    response = jsonify({"token": token})
    response.headers.update(NO_STORE)
    response.set_cookie(CSRF_COOKIE, token, max_age=86400, httponly=True, samesite="Strict",
                        secure=request.is_secure or settings().base_url.startswith("https:"))
    return response


def _place(info: dict) -> str:
    """Return how a page names a subscription's place."""
    if info["town"]:
        town = get_snapshot().gazetteer.get(info["town"])
        return town_name(town) if town else info["town"]
    return _("point %(lat)s, %(lon)s (±100 m)", lat=f"{info['lat']:.4f}", lon=f"{info['lon']:.4f}")


def _gone():
    """Answer a link whose subscription no longer exists."""
    return render_template("listening/invalid.html"), 404, NO_STORE


@bp.get("/subscriptions/confirm/<token>")
def confirm(token: str):
    """Confirm a subscription from the e-mailed link."""
    with writing() as conn:
        info = subscriptions.confirm(conn, token, db.utcnow())
    if info is None:
        return _gone()
    return render_template("listening/confirmed.html", info=info, place=_place(info), token=token), 200, NO_STORE


@bp.get("/subscriptions/unsubscribe/<token>")
def unsubscribe_page(token: str):
    """Show what the link unsubscribes from, with the button that does it (a GET changes nothing)."""
    conn = store.connect(settings().database)
    try:
        row = subscriptions.find(conn, token)
    finally:
        conn.close()
    if row is None:
        return render_template("listening/unsubscribed.html"), 200, NO_STORE
    info = subscriptions.describe(row)
    return render_template("listening/unsubscribe.html", info=info, place=_place(info), token=token), 200, NO_STORE


@bp.post("/subscriptions/unsubscribe/<token>")
def unsubscribe(token: str):
    """End a subscription: the one-click POST of RFC 8058 (no cookie, no confirmation), or the page's button."""
    with writing() as conn:
        subscriptions.unsubscribe(conn, token)
    return render_template("listening/unsubscribed.html"), 200, NO_STORE


def init_app(app) -> None:
    """Register the blueprint and the helper the subscribe form uses to name towns."""
    app.register_blueprint(bp)
    from portal.web.views import reports

    app.register_blueprint(reports.bp)

    @app.context_processor
    def listening_context():
        def town_choices(slugs) -> list[tuple[str, str]]:
            gazetteer = get_snapshot().gazetteer
            found = [(s, gazetteer.get(s)) for s in slugs or ()]
            return sorted(((s, town_name(t)) for s, t in found if t is not None), key=lambda p: p[1])

        return {"town_choices": town_choices, "subscribable_services": subscriptions.SERVICES}
