"""The answer for this place first, on the demo data: the village 1 km out, a point within a drop,
the folded banner, and availability only where a service exists."""
import re

import pyproj
import pytest

from portal.web.openapi import spec
from tests.village import EN, RU, village

GEOD = pyproj.Geod(ellps="WGS84")


def page(client, url, lang="en") -> str:
    """Return a page's HTML in a language, asserting it is served."""
    response = client.get(url, headers={"Accept-Language": lang})
    assert response.status_code == 200, (url, response.status_code)
    return response.get_data(as_text=True)


def text_of(html: str, element_id: str) -> str:
    """Return the text of the element with this id (tags dropped, spaces squeezed; no-break spaces kept)."""
    start = html.index(f'id="{element_id}"')
    tag = html.rfind("<", 0, start)
    name = re.match(r"<(\w+)", html[tag:]).group(1)
    end = html.index(f"</{name}>", start)
    return re.sub(r"[ \t\n]+", " ", re.sub(r"<[^>]+>", "", html[html.index(">", start) + 1:end])).strip()


@pytest.mark.parametrize("lang, sentence", [("en", EN), ("ru", RU)])
def test_the_village_reads_extension_needed_first_with_the_nearest_town(client, lang, sentence):
    v = village()
    html = page(client, f"/check?lat={v['lat']}&lon={v['lon']}", lang)
    assert text_of(html, "verdict") == sentence + "."
    # The verdict, then "is it down here?", then the rest; the map comes after both.
    assert html.index('id="verdict"') < html.index('id="place-verdict"') < html.index('<figure class="map"')
    assert "No coverage at this point" not in html and "outside every town" not in text_of(html, "verdict")


def test_the_village_json_says_the_same_words(client):
    v = village()
    for lang, sentence in (("en", EN), ("ru", RU)):
        body = client.get("/api/v1/check", query_string={"lat": v["lat"], "lon": v["lon"], "lang": lang},
                          headers={"Accept-Language": "ru"}).get_json()
        first = body["verdicts"][0]
        assert (first["technology"], first["verdict"], first["distance_m"], first["direction"]) == (
            "fiber", "extension_needed", 1003, "W")
        assert first["town"]["slug"] == "pechory" and first["text"] == sentence
        # The contract's fields are still there and agree.
        assert body["town"] is None and body["available"] == []
        assert body["nearest"]["fiber"]["distance_m"] == 1003 and body["nearest"]["fiber"]["direction"] == "W"
    assert [x["technology"] for x in body["verdicts"]] == ["fiber", "dsl", "cable", "wireless"]
    assert body["nearest_town"]["slug"] == "lesnoy-cottages"  # the cottages lie nearer than Pechory's edge
    # Without ?lang= the answer is in the region's language whatever the headers say, as every JSON
    # answer (incident texts too): it is cached and shared as it is.
    plain = client.get("/api/v1/check", query_string={"lat": v["lat"], "lon": v["lon"]},
                       headers={"Accept-Language": "en"})
    assert plain.get_json()["verdicts"][0]["text"] == RU
    assert "Accept-Language" not in plain.headers.get("Vary", "")
    refused = client.get("/api/v1/check", query_string={"lat": v["lat"], "lon": v["lon"], "lang": "de"})
    assert refused.status_code == 400 and "lang" in refused.get_json()["error"]


def test_a_point_within_a_standard_drop_is_available_and_never_called_missing(client):
    v = village()
    # 108 m east of the easternmost vertex of Pechory's fiber (the village point is 1,003 m east of it).
    vlon, vlat, _ = GEOD.fwd(v["lon"], v["lat"], 270, 1003)
    lon, lat, _ = GEOD.fwd(vlon, vlat, 90, 108)
    html = page(client, f"/check?lat={lat:.6f}&lon={lon:.6f}")
    assert '<p class="verdict yes" id="verdict">' in html
    assert text_of(html, "verdict") == "Fiber: available, 108 m west of you, within a standard drop."
    assert text_of(html, "verdict-fiber") == text_of(html, "verdict")
    assert "No fiber at this point" not in html
    body = client.get("/api/v1/check", query_string={"lat": f"{lat:.6f}", "lon": f"{lon:.6f}"}).get_json()
    assert [(x["technology"], x["verdict"]) for x in body["verdicts"][:2]] == [("fiber", "available"),
                                                                                ("dsl", "available")]


def test_verdict_kinds_are_described_in_the_api(client):
    verdict = spec()["components"]["schemas"]["Verdict"]
    assert verdict["properties"]["verdict"]["enum"] == ["available", "extension_needed", "planned", "none"]
    assert EN in verdict["description"]
    assert "verdicts" in spec()["components"]["schemas"]["PointCheck"]["required"]


@pytest.mark.parametrize("url, lang, summary", [
    ("/towns/pechory", "en", "2 outages elsewhere · planned maintenance: 1"),
    ("/towns/pechory", "ru", "2 аварии в других местах · плановые работы: 1"),
    # Velikiye Luki's own outage is its "is it down here?"; the banner counts only the other one.
    ("/towns/velikiye-luki", "en", "1 outage elsewhere · planned maintenance: 1"),
    ("/", "en", "2 outages now · planned maintenance: 1"),
])
def test_the_banner_folds_to_one_line_that_opens_on_demand(client, url, lang, summary):
    html = page(client, url, lang)
    banner = html[html.index('id="status-banner"'):html.index("</section>", html.index('id="status-banner"'))]
    assert '<details class="banner-fold">' in banner
    assert text_of(html, "status-banner-summary").replace("\u00a0", " ").endswith(summary)
    # What is folded is still there for whoever opens it.
    assert "Velikiye Luki" in banner or "Великие Луки" in banner


def test_is_it_down_here_comes_right_after_the_towns_verdict(client):
    html = page(client, "/towns/velikiye-luki")
    assert html.index('id="verdict"') < html.index('id="place-verdict"') < html.index("<table")
    assert text_of(html, "place-verdict") == "Yes: 1 known problem here right now."


@pytest.mark.parametrize("lang, none_here, no_percent", [
    ("en", "Internet: no service here", "available"), ("ru", "Интернет: нет услуги", "доступность"),
])
def test_availability_only_for_services_the_town_has(client, lang, none_here, no_percent):
    html = page(client, "/towns/lesnoy-cottages", lang)
    section = html[html.index('id="availability"'):]
    section = section[:section.index("</section>")]
    assert text_of(section, "availability-internet") == none_here
    assert "%" not in re.sub(r"<[^>]+>", "", section.split('id="availability-rule"')[0])
    assert client.get("/api/v1/towns/lesnoy-cottages").get_json()["services_offered"] == []
    # A town with coverage keeps its percentages.
    pechory = page(client, "/towns/pechory", lang)
    assert re.search(r"\d[.,]\d\d\s?%", text_of(pechory, "availability-internet"))
    assert no_percent in text_of(pechory, "availability-internet")
    assert client.get("/api/v1/towns/pechory").get_json()["services_offered"] == ["internet", "tv", "phone"]


@pytest.mark.parametrize("lang, words", [
    ("en", "The nearest fiber is {} m to the west of the centre (Pechory); a network extension would be needed."),
    ("ru", "Ближайшая оптика — в {} м к западу от центра (Печоры); нужно расширение сети."),
])
def test_a_town_without_fiber_names_where_the_nearest_fiber_is(client, lang, words):
    # Measured independently: the live fiber polygons' nearest point to the cottages' centre.
    import shapely
    from shapely.ops import nearest_points

    town = client.get("/api/v1/towns/lesnoy-cottages").get_json()
    fiber = [shapely.geometry.shape(f["geometry"]) for f in
             client.get("/api/v1/coverage.geojson").get_json()["features"]
             if f["properties"]["technology"] == "fiber" and f["properties"]["status"] == "live"]
    centre = shapely.Point(town["lon"], town["lat"])
    edge = nearest_points(shapely.union_all(fiber), centre)[0]
    azimuth, _, metres = GEOD.inv(town["lon"], town["lat"], edge.x, edge.y)
    near = town["nearest_fiber"]
    assert near["town"]["slug"] == "pechory" and near["direction"] == "W" and -112.5 < azimuth < -67.5
    assert abs(near["distance_m"] - metres) <= 3
    shown = f"{near['distance_m']:,}".replace(",", "\u00a0" if lang == "ru" else ",")
    assert words.format(shown) in text_of(page(client, "/towns/lesnoy-cottages", lang), "verdict")
    assert client.get("/api/v1/towns/pechory").get_json()["nearest_fiber"] is None  # it has fiber
