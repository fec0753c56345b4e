"""The support console in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`, installed by `make test`'s set-up) driven by selenium against the local stack.

Skipped, saying so, where Chromium is not installed. A screenshot of the searched page goes to
`reports/console-<time>.png`.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from local.stack import LocalStack

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REPORTS = Path(__file__).resolve().parents[2] / "reports"
# A GB number: `partner` may send to GB only (allowed_countries).
NUMBER = "+447400123461"
SCRIPT = "<script>alert(1)</script>"


def _send(stack: LocalStack, token: str, messages: list[dict[str, Any]]) -> None:
    answer = requests.post(
        f"{stack.api_url}/v1/messages",
        json={"messages": messages},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 202, answer.text


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(
            "Chromium is not installed (/usr/bin/chromium, /usr/bin/chromedriver): the console's "
            "browser test did not run; `make test` installs them with apt where it can"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="console-chromium-")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1100",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_the_console_page_sends_a_strict_content_security_policy(local_stack: LocalStack) -> None:
    page = requests.get(f"{local_stack.api_url}/console", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy and "<script>" not in page.text.split("</head>")[1]
    script = requests.get(f"{local_stack.api_url}/console/app.js", timeout=10)
    assert script.status_code == 200 and "innerHTML" not in script.text
    assert requests.get(f"{local_stack.api_url}/console/nope.js", timeout=10).status_code == 404


def test_support_finds_a_number_across_clients_in_the_console(
    local_stack: LocalStack, browser: Any
) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    _send(
        local_stack,
        "demo-token",
        [
            {"to": NUMBER, "message_id": "console-d1", "text": "first"},
            {"to": NUMBER, "message_id": "console-d2", "text": "second"},
            {"to": NUMBER, "message_id": SCRIPT, "text": SCRIPT},
        ],
    )
    _send(
        local_stack,
        "partner-token",
        [{"to": NUMBER, "message_id": f"console-p{i}", "text": "hi"} for i in range(4)],
    )
    wait = WebDriverWait(browser, 15)

    def sign_in(token: str) -> None:
        field = wait.until(ec.visibility_of_element_located((By.ID, "token")))
        field.send_keys(token)
        browser.find_element(By.CSS_SELECTOR, "#sign-in button").click()
        wait.until(ec.visibility_of_element_located((By.ID, "search")))

    def rows() -> list[Any]:
        found: list[Any] = browser.find_elements(By.CSS_SELECTOR, "#results tbody tr")
        return found

    def cells(row: Any) -> list[str]:
        return [td.text for td in row.find_elements(By.TAG_NAME, "td")]

    def search(number: str, per_page: str) -> None:
        browser.find_element(By.ID, "to").clear()
        browser.find_element(By.ID, "to").send_keys(number)
        Select(browser.find_element(By.ID, "limit")).select_by_visible_text(per_page)
        browser.find_element(By.CSS_SELECTOR, "#search button").click()
        wait.until(lambda _: browser.find_element(By.ID, "page-info").text == "page 1")

    browser.get(f"{local_stack.api_url}/console")
    sign_in("support-token")
    carriers = wait.until(lambda _: browser.find_elements(By.CSS_SELECTOR, "#carriers tbody tr"))
    assert {cells(row)[0] for row in carriers} >= {"ip2sms", "smartswitch", "vibes"}
    assert all(cells(row)[1] == "closed" for row in carriers)

    search(NUMBER, "5")
    first = [cells(row) for row in rows()]
    assert len(first) == 5
    # inserted, client, message id, number, carrier, type, status, description, body
    assert {row[1] for row in first} == {"demo", "partner"}
    assert {row[3] for row in first} == {"+44******61"}
    assert all(row[8] == "" for row in first)  # support sees no body
    assert [row[0] for row in first] == sorted((row[0] for row in first), reverse=True)
    badge = rows()[0].find_element(By.CSS_SELECTOR, ".status")
    assert badge.get_attribute("class").startswith("status status-")

    browser.find_element(By.ID, "next").click()
    wait.until(lambda _: browser.find_element(By.ID, "page-info").text == "page 2")
    second = [cells(row) for row in rows()]
    assert len(second) == 2 and browser.find_element(By.ID, "next").get_attribute("disabled")
    every = {row[2] for row in first + second}
    assert every == {"console-d1", "console-d2", SCRIPT, *(f"console-p{i}" for i in range(4))}

    # The message id that is a script tag is text in its cell, and nothing ran.
    def row_of(message_id: str) -> Any:
        return next((row for row in rows() if cells(row)[2] == message_id), None)

    hostile = row_of(SCRIPT)
    if hostile is None:
        browser.find_element(By.ID, "prev").click()
        wait.until(lambda _: browser.find_element(By.ID, "page-info").text == "page 1")
        hostile = row_of(SCRIPT)
    assert hostile.find_elements(By.TAG_NAME, "script") == []
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.accept()

    # Its history, as a timeline.
    hostile.find_element(By.CSS_SELECTOR, "button.history").click()
    wait.until(ec.visibility_of_element_located((By.ID, "timeline-panel")))
    entries = wait.until(lambda _: browser.find_elements(By.CSS_SELECTOR, "#timeline li"))
    assert "queued" in entries[0].text and "intake" in entries[0].text
    assert browser.find_element(By.ID, "timeline-title").text == f"demo / {SCRIPT}"

    REPORTS.mkdir(exist_ok=True)
    shot = REPORTS / f"console-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.png"
    assert browser.save_screenshot(str(shot))

    # The client itself sees its own messages only, with the body, as text.
    browser.find_element(By.ID, "sign-out").click()
    sign_in("demo-token")
    assert not browser.find_element(By.ID, "carriers-panel").is_displayed()
    search(NUMBER, "10")
    own = [cells(row) for row in rows()]
    assert {row[1] for row in own} == {"demo"} and len(own) == 3
    assert {row[8] for row in own} == {"first", "second", SCRIPT}
    assert {row[3] for row in own} == {NUMBER}
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.accept()

    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == [], errors
