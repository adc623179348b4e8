"""Reporting a problem in a real browser: the self-check first, then the answer in place.

On the portal serving SQLite and on the one serving PostgreSQL.
"""
from __future__ import annotations

import json
import urllib.request


def _count(server: str, town: str, service: str) -> int:
    """Return the public count of the last hour for a town and service."""
    with urllib.request.urlopen(f"{server}/api/v1/reports?town={town}", timeout=10) as response:
        found = json.load(response)["services"]
    return next(s["last_hour"] for s in found if s["service"] == service)


def test_only_one_device_sends_nothing_then_a_report_shows_the_count_in_place(open_page, server):
    page = open_page("/towns/gdov")
    form = page.locator("form.report-form")
    form.get_by_role("button", name="No TV").click()
    question = page.get_by_text("Is it only one site or device?")
    question.wait_for()
    page.get_by_role("button", name="Yes, only one").click()
    assert page.locator(".report-advice").is_visible()
    assert _count(server, "gdov", "tv") == 0  # the self-check saved a report

    form.get_by_role("button", name="No TV").click()
    page.get_by_role("button", name="No, nothing works: send the report").click()
    answer = page.locator(".report-result #report-answer")
    answer.wait_for()
    assert "1 report in the last hour in Gdov" in answer.inner_text()
    assert page.url.endswith("/towns/gdov")  # answered in place
    assert _count(server, "gdov", "tv") == 1


def test_a_report_where_an_outage_is_known_shows_the_incident(open_page):
    page = open_page("/towns/velikiye-luki", lang="ru")
    page.locator("form.report-form").get_by_role("button", name="Нет интернета").click()
    page.get_by_role("button", name="Нет, не работает ничего: отправить сообщение").click()
    answer = page.locator(".report-result #report-answer")
    answer.wait_for()
    text = answer.inner_text()
    assert "Мы знаем об этой проблеме: " in text and "Об этом сообщил" in text
    assert answer.get_by_role("link", name="Сообщите, когда починят").get_attribute("href").endswith(
        "#subscribe")
