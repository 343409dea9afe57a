"""The built site, served on 127.0.0.1 and opened in headless Chromium (Debian's, driven by Playwright).

Nothing leaves the machine: every request that is not for the local server is blocked, except
MathJax, which the pages load from a CDN and which is answered from the copy of MathJax 3 that the
``django-static-mathjax`` package ships, so that the math really renders.
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MATHJAX_CDN = "https://cdn.jsdelivr.net/npm/mathjax@3/"
MATHJAX_LOCAL = Path(importlib.util.find_spec("mathjax").submodule_search_locations[0]) / "static" / "mathjax"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--site", default=str(ROOT / "_build" / "html"), help="the built HTML site to test")
    parser.addoption("--student", action="store_true", help="the site is the student edition: no solutions")
    parser.addoption(
        "--edition",
        default="en",
        help="the site's language: en for the book at the site's root, or a translation's (zh_CN), whose "
        "site is in that folder of the English one and is served with it",
    )


@pytest.fixture(scope="session")
def site(pytestconfig: pytest.Config) -> Path:
    path = Path(pytestconfig.getoption("--site")).resolve()
    if not (path / "index.html").is_file():
        pytest.fail(f"no built site in {path}: run `make book` (or `make student`) first")
    return path


@pytest.fixture(scope="session")
def student(pytestconfig: pytest.Config) -> bool:
    return bool(pytestconfig.getoption("--student"))


@pytest.fixture(scope="session")
def edition(pytestconfig: pytest.Config) -> str:
    return str(pytestconfig.getoption("--edition"))


@pytest.fixture(scope="session")
def reports(site: Path, edition: str) -> Path:
    """Where the tests write what they saw: ``_build`` for ``_build/html``, ``_build/student`` for the
    student site, ``_build/zh_CN`` for the Chinese site (not inside any site)."""
    return site.parent if edition == "en" else ROOT / "_build" / edition


@pytest.fixture(scope="session")
def screenshots(reports: Path) -> Path:
    path = reports / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def base_url(site: Path, edition: str) -> Iterator[str]:
    """The site's URL. A translation is served from the English site's root, as it is published, so
    that its links to the English pages resolve."""
    root = site if edition == "en" else site.parent
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=root))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/" + ("" if edition == "en" else f"{site.name}/")
    server.shutdown()
    thread.join()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class Loaded:
    """A page opened in the browser, with what went wrong while it loaded."""

    page: Page
    errors: list[str] = field(default_factory=list)  # uncaught JavaScript exceptions
    blocked: list[str] = field(default_factory=list)  # requests that would have left the machine


@pytest.fixture(scope="session")
def new_page(browser: Browser, base_url: str) -> Iterator[Callable[[], Loaded]]:
    """``new_page()`` is a blank tab that records script errors and blocks off-machine requests."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})

    def route(loaded: Loaded, route: Route) -> None:
        url = route.request.url
        local = MATHJAX_LOCAL / url.removeprefix(MATHJAX_CDN).split("?")[0]
        if url.startswith(base_url):
            route.continue_()
        elif url.startswith(MATHJAX_CDN) and local.is_file():
            route.fulfill(path=local)
        else:
            loaded.blocked.append(url)
            route.abort()

    def new() -> Loaded:
        loaded = Loaded(context.new_page())
        loaded.page.on("pageerror", lambda error: loaded.errors.append(str(error)))
        loaded.page.route("**/*", functools.partial(route, loaded))
        return loaded

    yield new
    context.close()


@pytest.fixture(scope="session")
def open_page(new_page: Callable[[], Loaded], base_url: str) -> Callable[[str], Loaded]:
    """``open_page(path)`` opens ``path`` of the site once per session, waits until its math is typeset
    and its images have loaded, and returns the :class:`Loaded` page, brought to the front: Chromium
    throttles the timers and animation frames of a tab in the background, and every click waits for them."""
    opened: dict[str, Loaded] = {}

    def load(path: str) -> Loaded:
        if path not in opened:
            loaded = new_page()
            loaded.page.goto(base_url + path, wait_until="load")
            loaded.page.evaluate(
                """async () => {
                    if (window.MathJax && MathJax.startup) await MathJax.startup.promise;
                    await Promise.all([...document.images].map(img => img.complete ? null :
                        new Promise(done => { img.onload = img.onerror = done; })));
                    await document.fonts.ready;
                }"""
            )
            opened[path] = loaded
        opened[path].page.bring_to_front()
        return opened[path]

    return load
