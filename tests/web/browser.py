"""Headless Debian Chromium under selenium, and the dashboard served on 127.0.0.1 for it.

No browser is downloaded: the tests drive the system's ``chromium`` through its
``chromedriver`` (Debian packages ``chromium`` and ``chromium-driver``; ``.ci/run``
installs them). Their absence fails the tests, it never skips them.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.ui import WebDriverWait
from starlette.applications import Starlette

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

SCREENSHOTS_ENV = "SQUIDMESH_WRITE_SCREENSHOTS"
"""Set to 1 to write the pages' screenshots to docs/images/ for docs/dashboard.md."""
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


def screenshot_dir(tmp_path: Path) -> Path:
    """docs/images/ when screenshots are wanted for the docs, else the test's own folder."""
    if os.environ.get(SCREENSHOTS_ENV) == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        return DOCS_IMAGES
    return tmp_path


@contextmanager
def chromium(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """A headless Chromium with its own profile, no network chatter, 1280 pixels wide."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if shutil.which(p) is None]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} missing: apt-get install chromium chromium-driver "
            "(the browser tests never skip)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--window-size=1280,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


@contextmanager
def serving(app: Starlette) -> Iterator[str]:
    """``app`` under uvicorn on 127.0.0.1 and a free port; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, name="dashboard-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the dashboard server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def full_page(driver: webdriver.Chrome, path: Path) -> None:
    """Screenshot the whole page: the window grows to the document's height first."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(int(height), 600), 3000))
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 1000)


def navigate(driver: webdriver.Chrome, element: WebElement) -> None:
    """Click ``element`` and wait until the next page has replaced this one."""
    page = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, 10).until(staleness_of(page))
