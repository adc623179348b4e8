"""The OpenAPI description: served, complete, true to the answers, and unbreakable by fuzzing."""
from __future__ import annotations

import json
import re
import shutil
import uuid
from pathlib import Path

import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance

from portal import create_app
from portal.web import openapi
from tests.conftest import DEMO_NOW

ROOT = Path(__file__).resolve().parent.parent
SPEC = openapi.spec()


def _validator(name: str):
    """Return a validator of one component schema (its $refs resolved within the description)."""
    return jsonschema_rs.validator_for({"$ref": f"#/components/schemas/{name}", "components": SPEC["components"]})


def _response_schema(path: str, status: int) -> str:
    """Return the component name the description gives for a GET answer."""
    content = SPEC["paths"][path]["get"]["responses"][str(status)]["content"]
    return next(iter(content.values()))["schema"]["$ref"].rsplit("/", 1)[-1]


def test_the_description_is_served_as_stored(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json() == SPEC
    assert SPEC["openapi"].startswith("3.1")


def test_every_json_route_is_described_and_every_description_is_a_route(app):
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/") or rule.rule == "/openapi.json":
            routes.add(re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule))
    assert routes == set(SPEC["paths"]), "describe new routes in portal/web/openapi.json"
    for path, item in SPEC["paths"].items():
        for method, op in item.items():
            assert op.get("operationId") and op.get("summary"), (method, path)
            assert all(status.isdigit() for status in op["responses"]), (method, path)


# Real answers of the demo region, each checked against the schema the description names.
SAMPLES = [
    ("/api/v1/towns", "/api/v1/towns?q=Печеры", 200), ("/api/v1/towns", "/api/v1/towns", 200),
    ("/api/v1/towns/{slug}", "/api/v1/towns/pechory", 200), ("/api/v1/towns/{slug}", "/api/v1/towns/velikiye-luki", 200),
    ("/api/v1/towns/{slug}", "/api/v1/towns/pechori", 404),
    ("/api/v1/check", "/api/v1/check?lat=57.81&lon=27.61", 200), ("/api/v1/check", "/api/v1/check?lat=56.34&lon=30.52", 200),
    ("/api/v1/check", "/api/v1/check?lat=0&lon=0", 200), ("/api/v1/check", "/api/v1/check?lat=91&lon=0", 400),
    ("/api/v1/coverage.geojson", "/api/v1/coverage.geojson?bbox=27.6,57.8,27.62,57.82&simplify=50", 200),
    ("/api/v1/coverage.geojson", "/api/v1/coverage.geojson?bbox=1,2", 400),
    ("/api/v1/incidents", "/api/v1/incidents?status=all", 200), ("/api/v1/incidents", "/api/v1/incidents?town=gdov", 200),
    ("/api/v1/incidents", "/api/v1/incidents?service=radio", 400), ("/api/v1/incidents", "/api/v1/incidents?town=nowhere", 404),
    ("/api/v1/incidents/{incident_id}", "/api/v1/incidents/1", 200),
    ("/api/v1/incidents/{incident_id}", "/api/v1/incidents/2", 200),
    ("/api/v1/incidents/{incident_id}", "/api/v1/incidents/99999", 404),
    ("/api/v1/status", "/api/v1/status?town=velikiye-luki", 200), ("/api/v1/status", "/api/v1/status?lat=56.34&lon=30.52", 200),
    ("/api/v1/status", "/api/v1/status", 400), ("/api/v1/status", "/api/v1/status?town=atlantis", 404),
    ("/api/v1/summary", "/api/v1/summary", 200),
    ("/api/v1/reports", "/api/v1/reports?town=pechory", 200), ("/api/v1/reports", "/api/v1/reports", 400),
    ("/api/v1/reports", "/api/v1/reports?town=atlantis", 404),
    ("/api/v1/reports.geojson", "/api/v1/reports.geojson", 200),
    ("/api/v1/reports.geojson", "/api/v1/reports.geojson?service=radio", 400),
    ("/api/v2/summary.json", "/api/v2/summary.json", 200), ("/api/v2/status.json", "/api/v2/status.json", 200),
    ("/api/v2/components.json", "/api/v2/components.json", 200),
    ("/api/v2/incidents.json", "/api/v2/incidents.json", 200),
    ("/api/v2/incidents/unresolved.json", "/api/v2/incidents/unresolved.json", 200),
    ("/api/v2/scheduled-maintenances.json", "/api/v2/scheduled-maintenances.json", 200),
    ("/api/v2/scheduled-maintenances/upcoming.json", "/api/v2/scheduled-maintenances/upcoming.json", 200),
    ("/api/v2/scheduled-maintenances/active.json", "/api/v2/scheduled-maintenances/active.json", 200),
    ("/api/v1/demand.geojson", "/api/v1/demand.geojson", 200),
]


@pytest.mark.parametrize("path,url,status", SAMPLES)
def test_answers_match_the_described_schemas(client, path, url, status):
    response = client.get(url)
    assert response.status_code == status
    media = next(iter(SPEC["paths"][path]["get"]["responses"][str(status)]["content"]))
    assert response.mimetype == media
    errors = [f"{e.instance_path}: {e.message}"
              for e in _validator(_response_schema(path, status)).iter_errors(response.get_json())]
    assert errors == []


def test_every_described_answer_was_sampled():
    """Each status the description promises is checked against a real answer above."""
    sampled = {(path, status) for path, _url, status in SAMPLES} | SAMPLED_ELSEWHERE
    promised = {(path, int(s)) for path, item in SPEC["paths"].items() if "get" in item
                for s in item["get"]["responses"] if path != "/openapi.json"}
    assert promised <= sampled


# Answers that need other settings than the shared client's, each checked by its own test below.
SAMPLED_ELSEWHERE = {("/api/v1/coverage.geojson", 503)}


def test_an_answer_over_its_time_budget_is_described(db_target):
    app = create_app({"DATABASE": str(db_target), "NOW": DEMO_NOW, "TESTING": True,
                      "REQUEST_BUDGET_SECONDS": 1e-9})
    response = app.test_client().get("/api/v1/coverage.geojson?simplify=20")
    assert response.status_code == 503 and int(response.headers["Retry-After"]) >= 1
    assert response.mimetype == "application/json"
    validator = _validator(_response_schema("/api/v1/coverage.geojson", 503))
    assert list(validator.iter_errors(response.get_json())) == []


def _post_validator(path: str, status: int):
    """Return a validator of the answer the description gives for a POST."""
    schema = SPEC["paths"][path]["post"]["responses"][str(status)]["content"]["application/json"]["schema"]
    return jsonschema_rs.validator_for({**schema, "components": SPEC["components"]})


def test_public_writes_answer_as_described(db_target):
    """A subscription: accepted (202), a bad field (400), then over the client's limit (429)."""
    from portal import create_app

    app = create_app({"DATABASE": str(db_target), "TESTING": True,
                      "RATE_LIMITS": {"client": (2, 3600), "email": (5, 86400)}})
    client = app.test_client()
    path = "/api/v1/subscriptions"
    sent = [client.post(path, json={"email": "reader@example.org", "town": "pechory", "services": ["tv"]}),
            client.post(path, json={"email": "not an address", "town": "pechory", "services": ["tv"]}),
            client.post(path, json={"email": "reader@example.org", "town": "pechory", "services": ["tv"]})]
    assert [r.status_code for r in sent] == [202, 400, 429]
    assert "Retry-After" in sent[2].headers
    promised = {int(s) for s in SPEC["paths"][path]["post"]["responses"]}
    assert promised == {202, 400, 429}
    for response in sent:
        assert list(_post_validator(path, response.status_code).iter_errors(response.get_json())) == []


def test_docs_api_page_is_generated_from_the_description():
    page = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    assert page == openapi.render_markdown(), "run: python -m portal.web.openapi > docs/api.md"


# --- property-based: schemathesis over the description, hypothesis strings through search ------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzz_target(request, demo_db_template, tmp_path_factory) -> str:
    """Return the module's own copy of the demo database on each engine in turn: a path or a URL.

    Module-wide (the fuzzing shares it), so it cannot take the per-test ``db_target``; on
    PostgreSQL it is copied from the session's demo template as ``pg_url`` copies it.
    """
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("fuzz") / "portal.sqlite"
        shutil.copy(demo_db_template, path)
        return str(path)
    import psycopg

    server = request.getfixturevalue("pg_server")
    template = request.getfixturevalue("pg_demo_template")
    name = f"portal_fuzz_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"host={server} dbname=postgres user=bench", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    return f"postgresql://bench@/{name}?host={server}"


@pytest.fixture(scope="module")
def fuzz_app(fuzz_target):
    """Return an app on the module's own copy of the demo database (shared by the whole module's fuzzing)."""
    return create_app({"DATABASE": fuzz_target, "NOW": DEMO_NOW, "TESTING": True})


@pytest.fixture(scope="module")
def api_schema(fuzz_app):
    """Return the description loaded by schemathesis against the app in-process."""
    return schemathesis.openapi.from_wsgi("/openapi.json", fuzz_app)


OPERATIONS = [(method.upper(), path) for path, item in SPEC["paths"].items() for method in item]


@pytest.mark.parametrize("method,path", OPERATIONS)
def test_fuzzing_finds_no_server_error_and_no_schema_violation(api_schema, method, path):
    """Valid and invalid values for every parameter: never a 5xx, always a described answer.

    Every check schemathesis has runs (server errors, status codes, content types, response
    schemas, invalid values refused) except "schema-valid request accepted": OpenAPI cannot say
    "lat and lon, or town" or "min ≤ max in bbox", so a request the parameters' schemas allow
    may still rightly get the described 400.
    """
    # The strategies are driven by hand: schemathesis's own pytest plugin does not run under pytest 9.
    operation = api_schema[path][method]
    modes = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=st.one_of(*(operation.as_strategy(generation_mode=mode) for mode in modes)))
    def run(case):
        # Identity: the WSGI transport hands the body over as it is, and the portal gzips for clients that ask.
        case.call_and_validate(headers={"Accept-Encoding": "identity"}, excluded_checks=[positive_data_acceptance])

    run()


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(query=st.text(max_size=60))
def test_any_search_text_gets_a_described_answer(fuzz_app, query):
    client = fuzz_app.test_client()
    response = client.get("/api/v1/towns", query_string={"q": query})
    assert response.status_code == 200
    assert list(_validator("TownList").iter_errors(response.get_json())) == []
    page = client.get("/search", query_string={"q": query})
    assert page.status_code in (200, 302)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(slug=st.text(min_size=1, max_size=40).filter(lambda s: "/" not in s and s not in (".", "..")))
def test_any_town_address_gets_a_town_or_a_described_404(fuzz_app, slug):
    client = fuzz_app.test_client()
    response = client.get("/api/v1/towns/" + slug.replace("%", "%25").replace("?", "%3F").replace("#", "%23"))
    assert response.status_code in (200, 404), (slug, response.status_code)
    name = "TownReport" if response.status_code == 200 else "TownNotFound"
    assert list(_validator(name).iter_errors(json.loads(response.get_data()))) == []
