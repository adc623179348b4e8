"""Tests for the town gazetteer: folding, transliteration, typos, resolve() for scripts."""
import random

import pytest
import shapely

from portal.coverage.places import AmbiguousTown, Gazetteer, UnknownTown, normalize, slugify
from portal.data.layers import Town


def town(slug, name, name_ru, population, lat, lon, alt_names=()):
    """Return a Town whose extent is a small disc around its centre."""
    return Town(
        slug=slug, name=name, name_ru=name_ru, population=population, lat=lat, lon=lon,
        geometry=shapely.Point(lon, lat).buffer(0.01), alt_names=tuple(alt_names),
    )


PSKOV = town("pskov", "Pskov", "Псков", 210_000, 57.819, 28.332)
VELIKIYE_LUKI = town("velikiye-luki", "Velikiye Luki", "Великие Луки", 90_000, 56.34, 30.545)
PECHORY = town("pechory", "Pechory", "Печоры", 10_000, 57.815, 27.61)
# Known only by its Latin name: a Cyrillic query must come through transliteration.
SEBEZH = town("sebezh", "Sebezh", None, 5_800, 56.29, 28.48)
# Its Latin name is a German exonym, so "Sebezh" can only match the Cyrillic name.
NEVEL = town("nevel", "Newel", "Невель", 14_000, 56.02, 29.92)
PUSHKINSKIYE_GORY = town("pushkinskiye-gory", "Pushkinskiye Gory", "Пушкинские Горы", 4_500, 57.02, 28.91)
OSTROV = town("ostrov", "Ostrov", "Остров", 20_000, 57.345, 28.343)
VELYE = town("velye", "Velye", "Велье", 300, 57.07, 28.63)
SHCHYOLKOVO = town("shchyolkovo", "Shchyolkovo", "Щёлково", 130_000, 55.92, 37.99, ("Shchelkovo",))
KOROLYOV = town("korolyov", "Korolyov", "Королёв", 220_000, 55.92, 37.82)
POKROVSKOYE_1 = town("pokrovskoye", "Pokrovskoye", "Покровское", 900, 57.5, 28.9)
POKROVSKOYE_2 = town("pokrovskoye-2", "Pokrovskoye", "Покровское", 400, 56.6, 29.7)

TOWNS = [
    PSKOV, VELIKIYE_LUKI, PECHORY, SEBEZH, NEVEL, PUSHKINSKIYE_GORY, OSTROV, VELYE,
    SHCHYOLKOVO, KOROLYOV, POKROVSKOYE_1, POKROVSKOYE_2,
]


@pytest.fixture(scope="module")
def gazetteer():
    """Return a gazetteer of the hand-made towns."""
    return Gazetteer(TOWNS)


def first(gazetteer, query):
    """Return the best match's slug, or None."""
    found = gazetteer.search(query)
    return found[0].slug if found else None


def test_normalize_folds_case_yo_marks_and_punctuation():
    assert normalize("  Щёлково-2 ") == "щелково 2"
    assert normalize("ЁЛКИ") == "елки"
    assert normalize("Nevel’") == "nevel"
    assert normalize("Velikiye  Luki!!") == "velikiye luki"
    assert normalize("Пско́в") == "псков"  # a stress accent is not a separator
    assert normalize("Pod\"yachevo") == "podyachevo"
    assert normalize("\x00\t--\n") == ""


def test_slugify_unchanged():
    assert slugify("Velikiye Luki") == "velikiye-luki"
    assert slugify("Nevel’") == "nevel"
    assert slugify("Щёлково") == "shchelkovo"


@pytest.mark.parametrize("query", ["печоры", "ПЕЧОРЫ", "Pechori", "Печеры", "pechory", "Печоры "])
def test_pechory(gazetteer, query):
    assert first(gazetteer, query) == "pechory"


@pytest.mark.parametrize("query", ["Великие Луки", "velikie luki", "Velikiye Luki", "великие луки",
                                   "Луки Великие", "velikie-luki"])
def test_velikiye_luki(gazetteer, query):
    assert first(gazetteer, query) == "velikiye-luki"


def test_cyrillic_query_finds_latin_only_name(gazetteer):
    assert first(gazetteer, "Себеж") == "sebezh"


def test_latin_query_finds_cyrillic_only_name(gazetteer):
    assert first(gazetteer, "Nevel") == "nevel"
    assert first(gazetteer, "Newel") == "nevel"


@pytest.mark.parametrize("query", ["щелково", "Щёлково", "Shchelkovo", "Shchyolkovo"])
def test_yo_folding_shchyolkovo(gazetteer, query):
    assert first(gazetteer, query) == "shchyolkovo"


@pytest.mark.parametrize("query", ["Королев", "Королёв", "Korolev", "Korolyov"])
def test_yo_folding_korolyov(gazetteer, query):
    assert first(gazetteer, query) == "korolyov"


@pytest.mark.parametrize("query", ["Pskov", "Псков", "пск", "psk", "pskow", "Пско́в"])
def test_pskov(gazetteer, query):
    assert first(gazetteer, query) == "pskov"


@pytest.mark.parametrize("query", ["пушкинские горы", "Pushkinskie Gory", "Pushkinskiye Gory", "горы"])
def test_pushkinskiye_gory(gazetteer, query):
    assert first(gazetteer, query) == "pushkinskiye-gory"


def test_prefix_ties_go_to_the_bigger_town(gazetteer):
    # Both start with "вел"; Velikiye Luki is three hundred times bigger than Velye.
    assert [t.slug for t in gazetteer.search("вел")[:2]] == ["velikiye-luki", "velye"]
    assert [t.slug for t in gazetteer.search("vel")[:2]] == ["velikiye-luki", "velye"]


def test_exact_name_beats_bigger_prefix_match(gazetteer):
    assert first(gazetteer, "Велье") == "velye"


def test_typo_while_typing(gazetteer):
    assert first(gazetteer, "pehco") == "pechory"


def test_limit(gazetteer):
    assert len(gazetteer.search("p", limit=2)) == 2
    assert gazetteer.search("pskov", limit=0) == []


@pytest.mark.parametrize("query", ["xyzzy", "qqqqqq", "12345", "Москва-Сити Тауэр"])
def test_no_sensible_match(gazetteer, query):
    assert gazetteer.search(query) == []


@pytest.mark.parametrize("query", ["", "   ", "\t\n", "--", "!!!"])
def test_empty_query(gazetteer, query):
    assert gazetteer.search(query) == []


@pytest.mark.parametrize("query", [
    "😀", "Pskov 😀", "\x00\x01\x7f", "a" * 10_000, "Псков" * 2_000, "\ud800", "𝔓𝔰𝔨𝔬𝔳",
    "佩乔雷", "\u0301\u0301", "' OR 1=1 --", "%", "\\", "ß" * 50, "\u200b\u200d", "ǅ",
])
def test_weird_input_never_raises(gazetteer, query):
    assert isinstance(gazetteer.search(query), list)
    assert isinstance(gazetteer.suggest(query), list)
    try:
        gazetteer.resolve(query)
    except LookupError:
        pass


def test_long_query_is_clipped_not_rejected(gazetteer):
    assert first(gazetteer, "Pskov" + " " * 10 + "x" * 10_000) is None
    assert first(gazetteer, "Pskov" + "\x00" * 5) == "pskov"


def test_get(gazetteer):
    assert gazetteer.get("pechory") is PECHORY
    assert gazetteer.get("pechori") is None
    assert gazetteer.get("Pechory") is None


@pytest.mark.parametrize("text, slug", [("pechori", "pechory"), ("velikie-luki", "velikiye-luki"),
                                        ("pskow", "pskov"), ("pushkinskie-gori", "pushkinskiye-gory")])
def test_suggest_for_mistyped_slug(gazetteer, text, slug):
    assert gazetteer.suggest(text)[0].slug == slug


def test_suggest_limit(gazetteer):
    assert len(gazetteer.suggest("pokrovskoe", limit=1)) == 1


def test_resolve_exact(gazetteer):
    assert gazetteer.resolve("pokrovskoye-2") is POKROVSKOYE_2
    assert gazetteer.resolve("Печоры") is PECHORY
    assert gazetteer.resolve("Korolev") is KOROLYOV
    assert gazetteer.resolve(" shchelkovo ") is SHCHYOLKOVO
    assert gazetteer.resolve("Велье") is VELYE


def test_resolve_clear_fuzzy_match(gazetteer):
    assert gazetteer.resolve("Pechori") is PECHORY
    assert gazetteer.resolve("Великие Луки") is VELIKIYE_LUKI


def test_resolve_refuses_a_mere_prefix(gazetteer):
    with pytest.raises(UnknownTown) as info:
        gazetteer.resolve("Psk")
    assert info.value.suggestions[0] is PSKOV


def test_resolve_ambiguous(gazetteer):
    with pytest.raises(AmbiguousTown) as info:
        gazetteer.resolve("Pokrovskoye")
    assert {t.slug for t in info.value.candidates} == {"pokrovskoye", "pokrovskoye-2"}
    message = str(info.value)
    assert message.startswith("ambiguous town 'Pokrovskoye': pokrovskoye (")
    assert "pokrovskoye-2 (" in message and message.endswith("; give the slug")
    assert isinstance(info.value, LookupError)


def test_resolve_ambiguous_typo(gazetteer):
    with pytest.raises(AmbiguousTown):
        gazetteer.resolve("Покровское")
    with pytest.raises(AmbiguousTown):
        gazetteer.resolve("Pokrovskoe")


def test_resolve_unknown(gazetteer):
    with pytest.raises(UnknownTown) as info:
        gazetteer.resolve("xyzzy")
    assert info.value.suggestions == []
    assert str(info.value) == "unknown town 'xyzzy'"
    assert isinstance(info.value, LookupError)


def test_resolve_unknown_names_suggestions(gazetteer):
    with pytest.raises(UnknownTown) as info:
        gazetteer.resolve("Pskovo-Pecherskiy")
    assert "unknown town 'Pskovo-Pecherskiy'" in str(info.value)
    for t in info.value.suggestions:
        assert t.slug in str(info.value)


def test_towns_sorted_by_name(gazetteer):
    names = [t.name for t in gazetteer.towns]
    assert names == sorted(names, key=str.casefold)
    assert len(gazetteer.towns) == len(TOWNS)


def test_empty_gazetteer():
    empty = Gazetteer([])
    assert empty.search("Pskov") == [] and empty.suggest("pskov") == [] and empty.get("pskov") is None
    with pytest.raises(UnknownTown):
        empty.resolve("Pskov")


SYLLABLES = ["ka", "ro", "lo", "vo", "ne", "mi", "sha", "pu", "dor", "lev", "gra", "tsk", "zhi", "bo"]
CYRILLIC = {"ka": "ка", "ro": "ро", "lo": "ло", "vo": "во", "ne": "не", "mi": "ми", "sha": "ша",
            "pu": "пу", "dor": "дор", "lev": "лев", "gra": "гра", "tsk": "цк", "zhi": "жи", "bo": "бо"}


def synthetic_towns(count):
    """Return ``count`` towns with distinct made-up names in Latin and Cyrillic."""
    rng = random.Random(7)
    seen, towns = set(), []
    while len(towns) < count:
        parts = rng.choices(SYLLABLES, k=rng.randint(2, 4))
        name = "".join(parts).capitalize()
        if name in seen:
            continue
        seen.add(name)
        name_ru = "".join(CYRILLIC[p] for p in parts).capitalize()
        towns.append(town(slugify(name), name, name_ru, rng.randint(100, 100_000), 57.0, 29.0))
    return towns


def test_thousand_towns():
    towns = synthetic_towns(1_000) + [PSKOV, VELIKIYE_LUKI, PECHORY]
    gazetteer = Gazetteer(towns)
    for t in towns[::50] + [PSKOV, VELIKIYE_LUKI, PECHORY]:
        assert gazetteer.search(t.name)[0] is t
        assert gazetteer.search(t.name_ru)[0] is t
        assert gazetteer.get(t.slug) is t
    assert gazetteer.search("Pechori")[0] is PECHORY
    assert gazetteer.search("великие луки")[0] is VELIKIYE_LUKI
    assert gazetteer.search("пск")[0] is PSKOV
    assert gazetteer.search("xyzzy") == []
    # The exact name first, then every other name starting with the query, the biggest first.
    hits = gazetteer.search("kaka", limit=1_000)
    assert hits[0].name == "Kaka"
    starting = [t for t in towns if t.name.lower().startswith("kaka") and t.name != "Kaka"]
    assert len(starting) > 3
    block = hits[1 : 1 + len(starting)]
    assert set(block) == set(starting)
    assert [t.population for t in block] == sorted((t.population for t in block), reverse=True)


def test_find_takes_a_slug_and_refuses_an_unknown_one_with_suggestions(gazetteer):
    assert gazetteer.find("pechory") is PECHORY
    with pytest.raises(UnknownTown) as info:
        gazetteer.find("pechry")
    assert info.value.name == "pechry" and info.value.suggestions[0] is PECHORY
    assert str(info.value).startswith("unknown town 'pechry'; did you mean pechory (Pechory / Печоры, ")


def test_a_towns_own_name_ranks_before_a_bigger_towns_old_name():
    # Opochka is bigger, and one of its historic names is "Pechka": "Pech" is still Pechory,
    # as on the search page and in /api/v1/status?town=, while its old name still finds Opochka.
    opochka = town("opochka", "Opochka", "Опочка", 13_548, 56.71, 28.66, ("Opotschka", "Pechka"))
    pechory = town("pechory", "Pechory", "Печоры", 13_246, 57.815, 27.61)
    places = Gazetteer([opochka, pechory])
    assert [t.slug for t in places.search("Pech")] == ["pechory", "opochka"]
    assert [t.slug for t in places.search("Печ")][0] == "pechory"
    assert places.search("Pechka")[0].slug == "opochka"
    assert places.search("Opotsch")[0].slug == "opochka"
