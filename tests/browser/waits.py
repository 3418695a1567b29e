"""Waits the browser tests share."""

from __future__ import annotations

from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.remote.webdriver import WebDriver


def replaced(element):  # type: ignore[no-untyped-def]
    """Like ec.staleness_of, also when the driver catches the node mid-replacement (it
    then reports "does not belong to the document" instead of a stale reference)."""
    def check(_browser: WebDriver) -> bool:
        try:
            element.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as error:
            if "does not belong to the document" in str(error):
                return True
            raise
        return False

    return check
