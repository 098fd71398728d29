"""The dashboard in a real headless Chromium (see conftest): against a real ``serve``,
the series list and a series' chart show what the API answers, anomaly markers are
drawn where the API says the anomalies are, ids stay text, and keys work. Screenshots
land in ``test-artifacts/``."""

from __future__ import annotations

import math
import urllib.parse
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.servers import Server, call
from tests.ui.conftest import console_errors, create_key, only_local, open_page

START = 1_764_000_000
STEP = 300
TRAINING = 2016  # a week of five-minute points
IDS = ("web-latency", "température.salon", "датчик:Ω@1~x", "温度:東京")
LOADED = "return document.body.dataset.loaded === '1'"
CHARTED = "return Boolean(window.dashboard) && document.body.dataset.loaded === '1'"


def _quoted(series_id: str) -> str:
    return urllib.parse.quote(series_id, safe="")


def _value(index: int, rng: np.random.Generator) -> float:
    return 50 + 10 * math.sin(2 * math.pi * index / 288) + float(rng.normal(0, 1))


def populate(url: str, headers_key: str | None = None) -> list[dict[str, Any]]:
    """Fit every id of :data:`IDS` on a week of daily-seasonal points, then stream 400
    points into ``web-latency`` (a burst of three spikes, a dip, a lone spike) and 20
    quiet ones into ``température.salon``; the answers of ``web-latency``."""
    rng = np.random.default_rng(7)
    training = [round(_value(i, rng), 3) for i in range(TRAINING)]
    for series_id in IDS:
        body = {
            "timestamps": [START + STEP * i for i in range(TRAINING)],
            "values": training,
            "detector": "seasonal",
            "retrain": False,
        }
        status, answer = call(f"{url}/fit/{_quoted(series_id)}", "POST", body)
        assert status == 200, answer
    answers = []
    for i in range(TRAINING, TRAINING + 400):
        value = _value(i, rng) + (35 if i in (2100, 2101, 2102, 2350) else 0)
        value -= 30 if i == 2250 else 0
        point = {"timestamp": START + STEP * i, "value": round(value, 3)}
        status, answer = call(f"{url}/predict/web-latency", "POST", point)
        assert status == 200, answer
        answers.append(answer)
    for i in range(TRAINING, TRAINING + 20):
        point = {"timestamp": START + STEP * i, "value": round(_value(i, rng), 3)}
        assert call(f"{url}/predict/{_quoted(IDS[1])}", "POST", point)[0] == 200
    return answers


@pytest.fixture(scope="module")
def populated(server: Server) -> tuple[Server, list[dict[str, Any]]]:
    return server, populate(server.url)


def test_the_series_list_shows_each_series_and_its_counts_and_searches(
    browser: webdriver.Chrome,
    populated: tuple[Server, list[dict[str, Any]]],
    artifacts: Path,
) -> None:
    server, _ = populated
    open_page(browser, f"{server.url}/ui", LOADED)
    only_local(browser, server)
    assert console_errors(browser) == []
    status, listed = call(f"{server.url}/series?stream=true")
    assert status == 200
    rows = browser.find_elements(By.CSS_SELECTOR, "#series-table tbody tr")
    assert [row.get_attribute("data-series") for row in rows] == [
        item["series_id"] for item in listed["series"]
    ]
    assert sorted(row.find_element(By.TAG_NAME, "a").text for row in rows) == sorted(IDS)
    by_id = {row.get_attribute("data-series"): row for row in rows}
    for item in listed["series"]:
        cells = [cell.text for cell in by_id[item["series_id"]].find_elements(By.TAG_NAME, "td")]
        stream = item["stream"]
        if stream is None:
            assert cells[4] == "no point yet"
            continue
        assert cells[5] == f"{stream['last_score']:.3f}"
        assert cells[6:9] == [
            str(stream["anomalies_last_hour"]),
            str(stream["anomalies_last_day"]),
            str(stream["incidents_last_day"]),
        ]
    web = next(item for item in listed["series"] if item["series_id"] == "web-latency")
    assert web["stream"]["anomalies_last_day"] >= 1
    browser.save_screenshot(str(artifacts / "ui-series-list.png"))

    # Search: ASCII letters in either case, other letters as they are.
    browser.find_element(By.ID, "search").send_keys("TEMP")
    WebDriverWait(browser, 10).until(
        lambda d: (
            [
                row.get_attribute("data-series")
                for row in d.find_elements(By.CSS_SELECTOR, "#series-table tbody tr")
            ]
            == ["température.salon"]
        )
    )
    assert "search=TEMP" in browser.current_url
    assert console_errors(browser) == []


def test_the_chart_shows_the_scored_points_and_marks_the_anomalies_where_the_api_says(
    browser: webdriver.Chrome,
    populated: tuple[Server, list[dict[str, Any]]],
    artifacts: Path,
) -> None:
    server, answers = populated
    open_page(browser, f"{server.url}/ui/series?id=web-latency&range=all", CHARTED)
    only_local(browser, server)
    assert console_errors(browser) == []
    status, page = call(f"{server.url}/series/web-latency/points?limit=10000")
    assert status == 200
    points = page["points"]
    assert [p["timestamp"] for p in points] == [a["timestamp"] for a in answers]
    assert browser.execute_script("return window.dashboard.points") == points
    data = browser.execute_script("return window.dashboard.chart.data")
    assert data[0] == [p["timestamp"] for p in points]
    assert data[1] == [p["value"] for p in points]
    assert data[6] == [p["value"] if p["incident"] == "new" else None for p in points]
    assert data[7] == [p["value"] if p["anomaly"] else None for p in points]
    flagged = [p for p in points if p["anomaly"]]
    assert len(flagged) >= 4 and any(p["incident"] == "ongoing" for p in flagged)

    # Each anomaly's marker is on the canvas where its time and value put it: the
    # pixel there is the marker's red; a normal point's place is not.
    pixels = browser.execute_script(
        """
        const u = window.dashboard.chart;
        return arguments[0].map(([t, v]) => {
          const x = Math.round(u.valToPos(t, "x", true));
          const y = Math.round(u.valToPos(v, "y", true));
          return Array.from(u.ctx.getImageData(x, y, 1, 1).data);
        });
        """,
        [[p["timestamp"], p["value"]] for p in flagged] + [[points[5]["timestamp"], 80.0]],
    )
    for (red, green, blue, alpha), point in zip(pixels[:-1], flagged, strict=False):
        assert (red > 170, green < 90, blue < 90, alpha == 255) == (True,) * 4, (point, red)
    red, green, blue, _ = pixels[-1]
    assert not (red > 170 and green < 90 and blue < 90)

    # The anomalies table: what GET /series/{id}/points?anomalies_only=true says, newest first.
    only = call(f"{server.url}/series/web-latency/points?anomalies_only=true")[1]["points"]
    rows = browser.find_elements(By.CSS_SELECTOR, "#anomalies-table tbody tr")
    assert [int(str(row.get_attribute("data-timestamp"))) for row in rows] == [
        p["timestamp"] for p in reversed(only)
    ]
    assert [row.find_elements(By.TAG_NAME, "td")[5].text for row in rows] == [
        p["incident"] for p in reversed(only)
    ]
    versions = browser.find_elements(By.CSS_SELECTOR, "#versions-table tbody tr")
    assert versions[0].find_elements(By.TAG_NAME, "td")[1].text == "seasonal"
    browser.save_screenshot(str(artifacts / "ui-series-chart.png"))

    # Hover: the legend shows the value and score of the point under the cursor.
    target = flagged[0]
    over = browser.find_element(By.CSS_SELECTOR, ".u-over")
    x, y = browser.execute_script(
        "const u = window.dashboard.chart;"
        "return [u.valToPos(arguments[0], 'x'), u.valToPos(arguments[1], 'y')];",
        target["timestamp"],
        target["value"],
    )
    size = over.size
    ActionChains(browser).move_to_element_with_offset(
        over, int(x - size["width"] / 2), int(y - size["height"] / 2)
    ).perform()
    legend = WebDriverWait(browser, 5).until(
        lambda d: d.execute_script(
            "const u = window.dashboard.chart; return u.cursor.idx === null ? null :"
            " [...document.querySelectorAll('.u-legend .u-series')].map("
            "   (row) => row.querySelector('.u-value').textContent);"
        )
    )
    index = browser.execute_script("return window.dashboard.chart.cursor.idx")
    under = points[index]
    assert abs(under["timestamp"] - target["timestamp"]) <= 300  # the nearest point
    assert legend[5] == f"{under['score']:.3f}"
    assert float(legend[1].replace(",", "")) == pytest.approx(under["value"], abs=1e-3)

    # Zoom: a drag across the chart narrows the time axis to what was dragged over.
    before = browser.execute_script("return window.dashboard.chart.scales.x.max")
    left = -int(size["width"] / 4)
    ActionChains(browser).move_to_element_with_offset(
        over, left, 0
    ).click_and_hold().move_by_offset(int(size["width"] / 8), 0).release().perform()
    low, high = browser.execute_script(
        "const x = window.dashboard.chart.scales.x; return [x.min, x.max];"
    )
    assert high < before and high - low < (points[-1]["timestamp"] - points[0]["timestamp"]) / 4
    assert console_errors(browser) == []


def test_series_ids_are_shown_as_text_and_sent_encoded(
    browser: webdriver.Chrome, populated: tuple[Server, list[dict[str, Any]]]
) -> None:
    server, _ = populated
    for series_id in IDS[1:]:
        url = f"{server.url}/ui/series?id={_quoted(series_id)}"
        open_page(browser, url, LOADED)
        assert browser.find_element(By.ID, "title").text == series_id
        assert browser.title.startswith(series_id)
        assert browser.find_elements(By.CSS_SELECTOR, "#versions-table tbody tr")
        assert console_errors(browser) == []
    # An id in the address that is markup: shown as it is, nothing runs, the API's
    # refusal (422, the id's characters) is what the page says.
    hostile = '<img src=x onerror="window.pwned=1">'
    open_page(
        browser,
        f"{server.url}/ui/series?id={_quoted(hostile)}",
        "return document.getElementById('status').textContent.includes('422')",
    )
    assert browser.find_element(By.ID, "title").text == hostile
    assert browser.find_elements(By.CSS_SELECTOR, "main img") == []
    assert browser.execute_script("return window.pwned === undefined")
    assert "series_id" in browser.find_element(By.ID, "status").text


def test_the_dashboard_asks_for_a_key_and_uses_it(
    browser: webdriver.Chrome, tmp_path: Path, artifacts: Path
) -> None:
    database = tmp_path / "keys.db"
    writer = create_key(database, "writer", "write,predict")
    reader = create_key(database, "viewer", "read")
    server = Server(database, env={"ANOMALY_AUTH": "required"})
    try:
        fit = {"timestamps": [START + STEP * i for i in range(50)], "values": [1.0, 2.0] * 25}
        status, _ = call(f"{server.url}/fit/secret-sensor", "POST", fit, key=writer)
        assert status == 200
        open_page(
            browser, f"{server.url}/ui", "return Boolean(document.getElementById('key-form'))"
        )
        assert "API key" in browser.find_element(By.ID, "status").text
        assert browser.find_elements(By.CSS_SELECTOR, "#series-table tbody tr") == []
        browser.save_screenshot(str(artifacts / "ui-key-needed.png"))
        browser.find_element(By.ID, "key").send_keys(reader, Keys.ENTER)
        WebDriverWait(browser, 10).until(lambda d: d.execute_script(LOADED))
        rows = browser.find_elements(By.CSS_SELECTOR, "#series-table tbody tr")
        assert [row.get_attribute("data-series") for row in rows] == ["secret-sensor"]
        # The key stays in this tab: the series page needs no second asking.
        open_page(browser, f"{server.url}/ui/series?id=secret-sensor", LOADED)
        assert browser.find_element(By.ID, "title").text == "secret-sensor"
        # A key in the fragment (never sent to the server) is taken and wiped off the bar.
        browser.execute_script("sessionStorage.clear()")
        open_page(browser, f"{server.url}/ui#key={reader}", LOADED)
        assert "#key" not in browser.current_url
        assert browser.find_elements(By.CSS_SELECTOR, "#series-table tbody tr")
        # A key without the read scope: asked again, with the service's reason.
        browser.execute_script("sessionStorage.clear()")
        open_page(
            browser,
            f"{server.url}/ui#key={writer}",
            "return Boolean(document.getElementById('key-form'))",
        )
        assert "read" in browser.find_element(By.ID, "status").text
    finally:
        browser.execute_script("sessionStorage.clear()")
        server.stop()
