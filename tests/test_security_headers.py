"""Security headers on every answer, CORS on public data, no inline script, links on the public origin."""
from __future__ import annotations

import re

import pytest

from portal import create_app
from tests.conftest import DEMO_NOW

REQUIRED = ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy",
            "Permissions-Policy")
# One of each kind of answer: pages, API, GeoJSON, feeds, CSV, static and vendor files, errors.
ANSWERS = [
    ("/", 200), ("/towns", 200), ("/towns/pechory", 200), ("/check?lat=57.81&lon=27.61", 200),
    ("/incidents", 200), ("/incidents/1", 200), ("/towns.csv", 200), ("/search?q=pech", 302),
    ("/api/v1/towns?q=pech", 200), ("/api/v1/towns/pechory", 200), ("/api/v1/check?lat=57.81&lon=27.61", 200),
    ("/api/v1/coverage.geojson?bbox=27.6,57.8,27.62,57.82", 200), ("/api/v1/incidents", 200),
    ("/api/v1/summary", 200), ("/api/v2/status.json", 200), ("/openapi.json", 200),
    ("/feeds/incidents.atom", 200), ("/feeds/towns/pechory.atom", 200), ("/feeds/maintenance.ics", 200),
    ("/static/js/map.js", 200), ("/static/css/portal.css", 200), ("/static/vendor/leaflet/leaflet.js", 200),
    ("/no/such/page", 404), ("/towns/atlantis", 404), ("/check?lat=north", 400),
    ("/api/v1/towns/atlantis", 404), ("/api/v1/check?lat=999&lon=0", 400), ("/feeds/towns/atlantis.atom", 404),
]


@pytest.mark.parametrize("path,status", ANSWERS)
def test_every_answer_carries_the_security_headers(client, path, status):
    response = client.get(path)
    assert response.status_code == status
    for name in REQUIRED:
        assert response.headers.get(name), f"{path}: no {name}"
    policy = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_pages_allow_scripts_from_the_portal_and_images_from_the_tile_server(db_target):
    app = create_app({"DATABASE": str(db_target), "NOW": DEMO_NOW,
                      "TILES_URL": "https://{s}.tiles.example.net/{z}/{x}/{y}.png"})
    policy = app.test_client().get("/towns/pechory").headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert "https://*.tiles.example.net" in directives["img-src"].split()
    assert directives["object-src"] == "'none'" and directives["base-uri"] == "'none'"


def test_a_not_modified_answer_and_a_server_error_carry_them_too(db_target):
    app = create_app({"DATABASE": str(db_target), "NOW": DEMO_NOW})

    @app.get("/boom")
    def boom():
        raise RuntimeError("broken on purpose")

    client = app.test_client()
    first = client.get("/api/v1/summary")
    again = client.get("/api/v1/summary", headers={"If-None-Match": first.headers["ETag"]})
    failed = client.get("/boom")
    assert again.status_code == 304 and failed.status_code == 500
    for response in (again, failed):
        assert all(response.headers.get(name) for name in REQUIRED)


@pytest.mark.parametrize("path", ["/", "/towns", "/towns/pechory", "/check?lat=57.81&lon=27.61", "/incidents",
                                  "/incidents/1", "/incidents/2", "/search?q=zzzz", "/no/such/page"])
def test_no_page_has_an_inline_script_or_handler(client, path):
    html = client.get(path).get_data(as_text=True)
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag or 'type="application/json"' in tag, f"{path}: inline script {tag}"
    assert not re.search(r"\son[a-z]+\s*=", html), f"{path}: an inline event handler"
    assert not re.search(r"\sstyle\s*=", html) and "<style" not in html, f"{path}: inline style"


def test_a_title_cannot_end_the_map_data_block(client):
    """The map's data is JSON inside a script element: '</script>' in a name must stay text."""
    html = client.get("/towns/pechory").get_data(as_text=True)
    block = re.search(r'<script type="application/json" class="map-data"[^>]*>(.*?)</script>', html, re.S)
    assert block and "<" not in block.group(1)


@pytest.mark.parametrize("path", ["/api/v1/summary", "/api/v1/towns/pechory", "/api/v1/towns/atlantis",
                                  "/feeds/incidents.atom", "/feeds/maintenance.ics", "/openapi.json"])
def test_public_data_is_readable_from_any_origin(client, path):
    response = client.get(path, headers={"Origin": "https://dashboard.example.org"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "ETag" in response.headers["Access-Control-Expose-Headers"] or response.status_code >= 400


def test_pages_are_not_shared_across_origins(client):
    response = client.get("/towns/pechory", headers={"Origin": "https://dashboard.example.org"})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_a_conditional_cross_origin_request_passes_its_preflight(client):
    response = client.options("/api/v1/summary", headers={
        "Origin": "https://dashboard.example.org", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "if-none-match"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "If-None-Match" in response.headers["Access-Control-Allow-Headers"]


def test_absolute_links_use_base_url_never_the_host_header(db_target):
    app = create_app({"DATABASE": str(db_target), "NOW": DEMO_NOW, "BASE_URL": "https://status.example.net"})
    client = app.test_client()
    page = client.get("/incidents/1", headers={"Host": "evil.example.com"}).get_data(as_text=True)
    status = client.get("/api/v2/status.json", headers={"Host": "evil.example.com"}).get_json()
    assert "evil.example.com" not in page
    assert 'href="https://status.example.net/incidents/1"' in page
    assert status["page"]["url"] == "https://status.example.net/"


def test_public_url_joins_base_url_and_a_path(db_target):
    from portal.web.security import public_url

    app = create_app({"DATABASE": str(db_target), "BASE_URL": "https://example.net/portal/"})
    with app.test_request_context("/", headers={"Host": "evil.example.com"}):
        assert public_url("/incidents/3") == "https://example.net/portal/incidents/3"
        assert public_url("feeds/incidents.atom") == "https://example.net/portal/feeds/incidents.atom"
