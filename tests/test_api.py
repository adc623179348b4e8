"""The JSON API as CONTRACT.md writes it, on the shipped demo region."""
from __future__ import annotations

import json

import pytest
import shapely
from shapely.geometry import shape

TOWN_FIELDS = {"slug", "name", "name_ru", "population", "lat", "lon"}


def test_town_search_finds_pechory_however_typed(client):
    for q in ("печоры", "Pechori", "Печеры", "PECHORY"):
        towns = client.get("/api/v1/towns", query_string={"q": q}).get_json()["towns"]
        assert towns, q
        assert towns[0]["slug"] == "pechory", q
        assert set(towns[0]) == TOWN_FIELDS


def test_town_search_without_q_lists_every_town_by_name(client):
    towns = client.get("/api/v1/towns").get_json()["towns"]
    assert len(towns) == 56
    names = [t["name"] for t in towns]
    assert names == sorted(names)


def test_town_search_with_no_match_is_an_empty_list(client):
    assert client.get("/api/v1/towns?q=xyzzyq").get_json() == {"towns": []}


def test_town_answer_has_contract_fields_and_a_partial_fiber_share(client):
    body = client.get("/api/v1/towns/pechory").get_json()
    assert {"slug", "name", "name_ru", "population", "lat", "lon", "has_fiber", "technologies",
            "incidents", "geometry"} <= set(body)
    assert body["name_ru"] == "Печоры"
    assert body["has_fiber"] is True
    fiber = [t for t in body["technologies"] if t["technology"] == "fiber" and t["status"] == "live"]
    assert len(fiber) == 1 and 0.5 < fiber[0]["share"] < 0.75
    for t in body["technologies"]:
        assert {"technology", "status", "share", "max_down_mbps", "max_up_mbps", "available_from"} == set(t)
        assert 0 <= t["share"] <= 1
        assert (t["available_from"] is not None) == (t["status"] == "planned")
    assert shape(body["geometry"]).is_valid


def test_full_fiber_town(client):
    body = client.get("/api/v1/towns/pskov").get_json()
    fiber = [t for t in body["technologies"] if t["technology"] == "fiber" and t["status"] == "live"]
    assert fiber[0]["share"] >= 0.95


def test_unknown_town_is_404_with_suggestions(client):
    response = client.get("/api/v1/towns/pechori")
    assert response.status_code == 404
    body = response.get_json()
    assert "error" in body
    assert body["suggestions"][0]["slug"] == "pechory"


def _cottage(client):
    """Return the demo cottage settlement (the town without any coverage near Pechory)."""
    towns = client.get("/api/v1/towns?q=Lesnoy").get_json()["towns"]
    assert towns, "the demo data has the cottage settlement outside Pechory"
    return towns[0]


def test_point_in_the_cottage_settlement_has_no_coverage_and_fiber_about_a_km_away(client):
    cottage = _cottage(client)
    body = client.get("/api/v1/check", query_string={"lat": cottage["lat"], "lon": cottage["lon"]}).get_json()
    assert set(body) >= {"lat", "lon", "town", "available", "planned", "nearest", "incidents"}
    assert body["available"] == []
    assert body["town"]["slug"] == cottage["slug"]
    fiber = body["nearest"]["fiber"]
    assert 800 <= fiber["distance_m"] <= 1500
    assert fiber["direction"] in {"N", "NE", "E", "SE", "S", "SW", "W", "NW"}
    assert fiber["connection"] == "network_extension"
    # nearest has an entry for every technology that is live somewhere but not here
    assert {"fiber", "dsl"} <= set(body["nearest"])


def test_point_at_pechory_fiber_is_available(client):
    coverage = client.get("/api/v1/coverage.geojson").get_json()
    pechory = shape(client.get("/api/v1/towns/pechory").get_json()["geometry"])
    fiber = [shape(f["geometry"]) for f in coverage["features"]
             if f["properties"]["technology"] == "fiber" and f["properties"]["status"] == "live"]
    inside = shapely.intersection(shapely.union_all(fiber), pechory).representative_point()
    body = client.get("/api/v1/check", query_string={"lat": inside.y, "lon": inside.x}).get_json()
    assert "fiber" in [a["technology"] for a in body["available"]]
    assert "fiber" not in body["nearest"]
    assert body["town"]["slug"] == "pechory"


@pytest.mark.parametrize("query, bad", [
    ({"lon": "27.6"}, "lat"),
    ({"lat": "abc", "lon": "27.6"}, "lat"),
    ({"lat": "nan", "lon": "27.6"}, "lat"),
    ({"lat": "57.8", "lon": "inf"}, "lon"),
    ({"lat": "91", "lon": "27.6"}, "lat"),
    ({"lat": "57.8", "lon": "-181"}, "lon"),
])
def test_bad_coordinates_are_400_naming_the_value(client, query, bad):
    response = client.get("/api/v1/check", query_string=query)
    assert response.status_code == 400
    assert f"'{bad}'" in response.get_json()["error"]


def test_coverage_geojson_properties_and_bbox(client):
    everything = client.get("/api/v1/coverage.geojson").get_json()
    assert everything["type"] == "FeatureCollection"
    props = {"technology", "status", "max_down_mbps", "max_up_mbps", "available_from"}
    assert all(set(f["properties"]) == props for f in everything["features"])
    pechory = client.get("/api/v1/towns/pechory").get_json()
    minx, miny, maxx, maxy = shape(pechory["geometry"]).bounds
    near = client.get(f"/api/v1/coverage.geojson?bbox={minx},{miny},{maxx},{maxy}").get_json()
    assert 0 < len(near["features"]) < len(everything["features"])
    box = shapely.box(minx, miny, maxx, maxy)
    assert all(shape(f["geometry"]).intersects(box) for f in near["features"])


@pytest.mark.parametrize("bbox", ["1,2,3", "a,b,c,d", "30,50,20,60", "nan,1,2,3"])
def test_bad_bbox_is_400(client, bbox):
    response = client.get(f"/api/v1/coverage.geojson?bbox={bbox}")
    assert response.status_code == 400
    assert "bbox" in response.get_json()["error"]


def test_unknown_api_path_is_json_404(client):
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert json.loads(response.data)["error"]
