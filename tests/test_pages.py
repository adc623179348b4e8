"""Pages render the answers in words, in both languages, and bad input gets a helpful page."""
from __future__ import annotations

import re

import pytest


def test_home_has_search_and_point_check(client):
    html = client.get("/").get_data(as_text=True)
    assert 'action="/search"' in html and 'name="q"' in html
    assert 'action="/check"' in html


def test_search_form_without_javascript_goes_to_the_town(client):
    for q in ("Pechori", "печоры", "Печеры"):
        response = client.get("/search", query_string={"q": q})
        assert response.status_code == 302, q
        assert response.headers["Location"].endswith("/towns/pechory")


def test_search_form_lists_towns_when_the_query_names_several(client):
    html = client.get("/search?q=Novo").get_data(as_text=True)
    assert 'href="/towns/novorzhev"' in html and 'href="/towns/novosokolniki"' in html


def test_town_page_states_the_fiber_share_and_has_a_map(client):
    html = client.get("/towns/pechory").get_data(as_text=True)
    verdict = re.search(r'id="verdict">(.*?)</p>', html, re.S).group(1)
    assert re.search(r"Yes: fiber covers about \d+%", verdict)
    assert "folium-map" in html
    assert "10 working days" in html


def test_town_page_in_russian(client):
    html = client.get("/towns/pechory", headers={"Accept-Language": "ru"}).get_data(as_text=True)
    assert "<h1>Печоры</h1>" in html
    assert "оптика" in html.lower()


def test_language_choice_is_remembered(client):
    response = client.get("/?lang=ru")
    assert "lang=ru" in response.headers.get("Set-Cookie", "")
    html = client.get("/towns/pechory").get_data(as_text=True)
    assert "<h1>Печоры</h1>" in html


def test_town_page_is_small(client):
    html = client.get("/towns/pechory").get_data()
    assert len(html) < 150_000


def test_pages_load_nothing_from_third_parties(client):
    for url in ("/", "/towns", "/towns/pechory", "/check?lat=57.8&lon=27.6"):
        html = client.get(url).get_data(as_text=True)
        for src in re.findall(r'(?:src|href)="(https?://[^"]+)"', html):
            assert "openstreetmap.org/copyright" in src, (url, src)


def test_check_page_for_the_cottage_settlement_says_network_extension(client):
    cottage = client.get("/api/v1/towns?q=Lesnoy").get_json()["towns"][0]
    html = client.get(f"/check?lat={cottage['lat']}&lon={cottage['lon']}").get_data(as_text=True)
    # The first thing said is the nearest useful option, with its town: not "no coverage".
    verdict = re.search(r'<p class="verdict no" id="verdict">([^<]+)</p>', html).group(1)
    assert re.fullmatch(r"Fiber: \d,\d{3} m west of you, beyond a standard drop, network extension needed;"
                        r" nearest town Pechory\.", verdict), verdict


def test_towns_overview_is_sortable_and_downloadable(client):
    html = client.get("/towns?sort=fiber_share").get_data(as_text=True)
    assert 'aria-sort="descending"' in html
    csv_text = client.get("/towns.csv").get_data(as_text=True)
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("slug,name,name_ru,population")
    assert len(lines) == 57
    assert any(line.startswith("pechory,Pechory,Печоры") for line in lines)


def test_unknown_town_page_suggests(client):
    response = client.get("/towns/pechori")
    assert response.status_code == 404
    assert 'href="/towns/pechory"' in response.get_data(as_text=True)


@pytest.mark.parametrize("url, word", [
    ("/check", "lat"), ("/check?lat=x&lon=1", "lat"), ("/check?lat=1&lon=999", "lon"),
    ("/towns?sort=colour", "sort"), ("/towns?page=0", "page"), ("/towns?page=2", "page"),
    ("/towns?page=two", "page"),
])
def test_bad_query_values_get_a_400_page_naming_them(client, url, word):
    response = client.get(url)
    assert response.status_code == 400
    assert f"'{word}'" in response.get_data(as_text=True) or word in response.get_data(as_text=True)


def test_towns_overview_comes_a_page_at_a_time_with_every_town_reachable(app, client):
    app.config["OVERVIEW_PAGE_SIZE"] = 20  # the demo's 56 towns make three pages

    def listed(html):
        return re.findall(r'<th scope="row"><a href="/towns/([a-z0-9-]+)">', html)

    pages = [client.get(f"/towns?sort=population&page={n}").get_data(as_text=True) for n in (1, 2, 3)]
    rows = [listed(html) for html in pages]
    assert [len(r) for r in rows] == [20, 20, 16]
    csv_slugs = [line.split(",")[0] for line in client.get("/towns.csv?sort=population").get_data(
        as_text=True).strip().splitlines()[1:]]
    assert rows[0] + rows[1] + rows[2] == csv_slugs  # the same order, nothing lost or repeated
    assert "1–20 of 56" in pages[0] and "41–56 of 56" in pages[2]
    # Page links keep the sort; the current page is marked, and the last has no "next".
    assert 'href="/towns?sort=population&amp;order=desc&amp;page=2" rel="next"' in pages[0]
    assert '<span aria-current="page">3</span>' in pages[2] and 'rel="next"' not in pages[2]
    everything = client.get("/towns?sort=population&page=all").get_data(as_text=True)
    assert listed(everything) == csv_slugs
    # Sorting from the one-page list stays on one page.
    assert '/towns?sort=name&amp;order=asc&amp;page=all">Town' in everything
    # The map still shows every town whatever the page.
    assert all(f'"/towns/{slug}"' in pages[2] for slug in csv_slugs)


def test_towns_overview_in_russian_sorts_by_the_russian_alphabet_across_pages(app, client):
    app.config["OVERVIEW_PAGE_SIZE"] = 20
    names = []
    for n in (1, 2, 3):
        html = client.get(f"/towns?page={n}", headers={"Accept-Language": "ru"}).get_data(as_text=True)
        names += re.findall(r'<th scope="row"><a href="/towns/[a-z0-9-]+">([^<]+)</a>', html)
    assert len(names) == 56
    assert names == sorted(names, key=str.lower)
    assert names.index("Бежаницы") < names.index("Великие Луки")


def test_weird_paths_never_500(client):
    for url in ("/towns/%00", "/towns/" + "a" * 3000, "/check?lat=1e309&lon=1", "/search?q=%F0%9F%92%A9",
                "/api/v1/towns?q=" + "я" * 5000, "/api/v1/check?lat=&lon="):
        assert client.get(url).status_code < 500, url


def test_region_map_shows_many_towns_as_points_to_stay_light(tmp_path):
    """A region of 250 towns: the overview map carries points, not outlines."""
    import shapely
    from dbtools import database_with_towns

    from portal import create_app
    from portal.data.layers import Town

    towns = []
    for i in range(250):
        lon, lat = 28 + (i % 25) * 0.1, 57 + (i // 25) * 0.1
        # A 400-vertex outline each: drawn as outlines this page would be several hundred KB.
        outline = shapely.Point(lon, lat).buffer(0.02, quad_segs=100)
        towns.append(Town(f"town-{i}", f"Town {i}", None, 1000, lat, lon, outline))
    path = database_with_towns(tmp_path / "many.sqlite", towns)
    client = create_app({"DATABASE": str(path)}).test_client()
    html = client.get("/towns", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert html.count('"type":"Point"') + html.count('"type": "Point"') == 250
    assert "Polygon" not in html
    assert len(html.encode()) < 250 * 600


def test_town_slug_typed_with_capitals_redirects_to_the_town(client):
    response = client.get("/towns/PECHORY")
    assert response.status_code == 301
    assert response.headers["Location"].endswith("/towns/pechory")


def test_check_page_names_the_town_in_russian(client):
    cottage = client.get("/api/v1/towns?q=Lesnoy").get_json()["towns"][0]
    html = client.get(f"/check?lat={cottage['lat']}&lon={cottage['lon']}",
                      headers={"Accept-Language": "ru"}).get_data(as_text=True)
    assert "коттеджный посёлок Лесной" in html
    assert "Lesnoy (cottage settlement)" not in html


def test_region_map_legend_explains_grey_as_no_coverage(client):
    for url in ("/", "/towns"):
        html = client.get(url).get_data(as_text=True)
        assert "grey: no coverage yet" in html and "the town's extent" not in html
    assert "grey outline: the town's extent" in client.get("/towns/pechory").get_data(as_text=True)


PAGES_WITH_HEAD = ["/", "/towns", "/towns/pechory", "/check?lat=57.8150&lon=27.6060", "/incidents",
                   "/incidents/3", "/search?q=Novo"]


@pytest.mark.parametrize("lang", ["en", "ru"])
@pytest.mark.parametrize("path", PAGES_WITH_HEAD)
def test_every_page_has_one_title_a_description_in_its_language_and_an_icon(client, path, lang):
    html = client.get(path, headers={"Accept-Language": lang}).get_data(as_text=True)
    titles = re.findall(r"<title>(.*?)</title>", html, re.S)
    assert len(titles) == 1
    parts = [p.strip() for p in titles[0].split("·")]
    assert len(parts) == len(set(parts)), f"the title repeats itself: {titles[0]!r}"
    description = re.search(r'<meta name="description" content="([^"]{50,300})">', html).group(1)
    # Russian pages describe themselves in Russian, English ones in English.
    assert bool(re.search(r"[а-яё]{4}", description)) == (lang == "ru"), description
    assert 'rel="icon" href="/static/favicon.ico"' in html


def test_home_title_is_the_site_name_once(client):
    html = client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "<title>Coverage and outages</title>" in html


def test_favicon_is_served_where_browsers_look_for_it(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response.mimetype == "image/vnd.microsoft.icon"
    assert response.data[:4] == b"\x00\x00\x01\x00"  # an ICO file
    assert response.data == client.get("/static/favicon.ico").data


def test_english_dates_read_day_month_year_and_russian_stays_russian(client):
    en = client.get("/incidents", headers={"Accept-Language": "en"}).get_data(as_text=True)
    ru = client.get("/incidents", headers={"Accept-Language": "ru"}).get_data(as_text=True)
    assert re.search(r"\b\d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) 20\d\d\b", en)
    assert not re.search(r"\b\d{1,2}/\d{1,2}/\d{2}\b", en), "a numeric date an English reader can misread"
    assert not re.search(r"\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{1,2}, 20\d\d", en)
    assert re.search(r"\d{1,2} (янв|февр|мар|апр|мая|июн|июл|авг|сент|окт|нояб|дек)\. 20\d\d\sг\.", ru)
