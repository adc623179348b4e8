"""The Content-Security-Policy in a real browser: every map is drawn and nothing is refused."""
from __future__ import annotations

import pytest
from pagecheck import wait_for_map

# The pages with a map, and whether the map loads coverage (the region maps show towns only).
MAP_PAGES = [("/", False), ("/towns", False), ("/towns/pechory", True), ("/check?lat=57.8163&lon=27.6119", True),
             ("/incidents/1", False)]

RECORD_VIOLATIONS = """() => {
  window.__cspViolations = [];
  document.addEventListener('securitypolicyviolation', e => window.__cspViolations.push(
    e.violatedDirective + ' ' + (e.blockedURI || 'inline') + ' ' + (e.sourceFile || '') + ':' + e.lineNumber));
}"""


@pytest.mark.parametrize("path,coverage", MAP_PAGES)
def test_maps_draw_under_the_policy_with_no_violation(open_page, path, coverage):
    page = open_page("about:blank")
    console = []
    page.on("console", lambda m: console.append(m.text) if "Content Security Policy" in m.text else None)
    page.add_init_script(f"({RECORD_VIOLATIONS})()")
    response = page.goto(path)
    policy = response.headers["content-security-policy"]
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    wait_for_map(page, coverage=coverage)
    assert page.locator(".leaflet-pane").count() > 0
    page.wait_for_timeout(300)  # a late tooltip or tile request would be refused by now
    assert page.evaluate("window.__cspViolations") == [] and console == []


def test_an_injected_inline_script_is_refused(open_page):
    """What the policy is for: markup that slipped into a page cannot run."""
    page = open_page("/towns/pechory")
    ran = page.evaluate("""() => new Promise(resolve => {
      document.addEventListener('securitypolicyviolation', () => resolve('refused'), {once: true});
      const s = document.createElement('script');
      s.textContent = 'window.__ran = true';
      document.body.appendChild(s);
      setTimeout(() => resolve(window.__ran ? 'ran' : 'silent'), 1000);
    })""")
    assert ran == "refused"
