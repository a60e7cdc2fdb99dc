"""A headless Chromium for the tests of ``vltk serve``'s page: Debian's ``chromium`` and ``chromium-driver``
(``apt-get install chromium chromium-driver``; ``.ci/run`` installs them), driven by Selenium with that
driver. Nothing is downloaded: Selenium is given the driver's path, so its own driver manager never runs.
Override the executables with ``VLTK_CHROMIUM`` and ``VLTK_CHROMEDRIVER``."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# Without the background-networking flags Chromium keeps reaching for Google's hosts, which a closed
# network refuses at every start; the sandbox needs user namespaces a root CI runner does not have.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1300,1000",
)


def _executable(variable: str, *names: str) -> str | None:
    chosen = os.environ.get(variable)
    if chosen:
        return chosen if os.path.isfile(chosen) else None
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def chromium_paths() -> tuple[str | None, str | None]:
    """The Chromium binary and its ChromeDriver (``None`` where missing)."""
    browser = _executable("VLTK_CHROMIUM", "chromium", "chromium-browser")
    driver = _executable("VLTK_CHROMEDRIVER", "chromedriver")
    return browser, driver


def browser_unavailable_reason() -> str | None:
    """Why the browser tests cannot run here, or ``None``."""
    try:
        import selenium  # noqa: F401
    except ImportError as error:
        return f"selenium is not installed ({error}; it is a test dependency: pip install -e '.[test]')"
    browser, driver = chromium_paths()
    if browser is None or driver is None:
        return "Debian's chromium and chromium-driver are not installed (apt-get install chromium-driver)"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium WebDriver with a fresh profile, quit afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = chromium_paths()
    options = webdriver.ChromeOptions()
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="vltk-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.binary_location = browser
    session = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield session
    finally:
        session.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver: Any, condition: Callable[[Any], Any], timeout: float = 60.0, what: str = "") -> Any:
    """Poll ``condition(driver)`` until it returns something truthy; on timeout fail with ``what`` and a
    screenshot of the page written next to the temp folder."""
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition(driver)
        except StaleElementReferenceException:
            value = None
        if value:
            return value
        time.sleep(0.05)
    shot = os.path.join(tempfile.gettempdir(), "vltk-browser-timeout.png")
    driver.save_screenshot(shot)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or condition} (page: {shot})")


def css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def toasts(driver: Any) -> list[str]:
    """The texts of the error messages shown in the page (Gradio's toasts)."""
    return [element.text for element in css(driver, "[data-testid='toast-body'], .toast-body")]


def upload_field(driver: Any, key: str) -> Any:
    """The file input of tab ``key``'s upload component, emptied first (as a person clears the file shown)."""
    for clear in css(driver, f"#{key}-upload button[aria-label='Clear']"):
        clear.click()
    return wait_for(driver, lambda d: css(d, f"#{key}-upload input[type=file]"), what="the upload field")[0]


def upload(driver: Any, key: str, path: Any) -> None:
    """Put the file ``path`` into tab ``key``'s upload field and wait until the page lists it."""
    upload_field(driver, key).send_keys(str(path))
    name = os.path.basename(str(path))
    wait_for(driver, lambda d: css(d, f"#{key}-upload td[aria-label='{name}']"), what=f"{name} uploaded")
