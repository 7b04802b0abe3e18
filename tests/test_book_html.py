"""The built book (``make book``), checked in a real headless browser.

Run after ``jupyter-book build .``: every chapter page must show its figures (images that
actually decode) and its audio players (audio elements whose WAV data the browser can play), and
the results JSON; the math must be typeset, and no display equation may be wider than the page.
Needs Chromium (Debian's ``chromium`` package); the test is skipped without it unless
``AUDIOLAB_REQUIRE_BROWSER=1`` (set by CI).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
CHAPTERS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def page():
    if not (HTML / "index.html").exists():
        pytest.fail(f"{HTML} has no index.html: build the book first (make book)")
    exe = _chromium()
    if exe is None:
        if os.environ.get("AUDIOLAB_REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium is required for the book check (apt-get install chromium)")
        pytest.skip("no Chromium installed (apt-get install chromium) for the browser check")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=exe,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser.new_page()
        browser.close()


def test_index_lists_the_chapters(page):
    page.goto((HTML / "index.html").as_uri())  # a redirect to the preface
    page.wait_for_url("**/book/intro.html")
    page.wait_for_load_state()
    assert "Everything Is a Mapping" in page.title()
    nav = page.inner_text("nav")
    assert "Audio as data" in nav


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_page_shows_plots_audio_and_results(page, chapter):
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto((HTML / "notebooks" / f"{chapter}.html").as_uri(), wait_until="load")
    images = page.eval_on_selector_all(
        "img", "els => els.map(e => [e.complete && e.naturalWidth > 0, e.src])"
    )
    # Match on the whole address: a checkout under a long path pushes "_images" far along it.
    plots = [ok for ok, src in images if src.startswith("data:image") or "/_images/" in src]
    images = [(ok, src[-60:]) for ok, src in images]
    assert len(plots) >= 5 and all(plots), f"{chapter}: figures missing or broken: {images}"
    audio_ok = page.eval_on_selector_all(
        "audio",
        """els => Promise.all(els.map(a => new Promise(resolve => {
            const src = a.querySelector('source');
            if (!src || !src.src.startsWith('data:audio/wav')) return resolve(false);
            if (a.readyState >= 1) return resolve(a.duration > 0);
            a.addEventListener('loadedmetadata', () => resolve(a.duration > 0));
            a.addEventListener('error', () => resolve(false));
            a.load();
        })))""",
    )
    assert len(audio_ok) >= 5 and all(audio_ok), f"{chapter}: audio players broken: {audio_ok}"
    page.wait_for_function(
        "() => document.querySelectorAll('mjx-container').length > 5", timeout=20_000
    )
    page.evaluate("() => MathJax.startup.promise")  # all math typeset
    too_wide = page.eval_on_selector_all(
        "mjx-container[display='true']",
        "els => els.filter(m => m.scrollWidth > m.parentElement.clientWidth + 2)"
        "          .map(m => m.textContent.slice(0, 50))",
    )
    assert not too_wide, f"{chapter}: display equations wider than the page: {too_wide}"
    text = page.inner_text("main")
    assert '"mode": "full"' in text, f"{chapter}: the results cell does not show a full run"
    assert "Exercise" in text and "Solution" in text
    # Solutions are collapsed until the reader opens them (sphinx-togglebutton's dropdown: its
    # script marks them toggle-hidden, its style makes their content invisible and flat).
    page.wait_for_function(
        "() => document.querySelectorAll('div.solution.toggle-hidden').length > 0", timeout=10_000
    )
    solutions = page.eval_on_selector_all(
        "div.solution",
        """els => els.map(e => {
            const body = e.querySelector(':scope > :not(.admonition-title)');
            const hidden = !body || getComputedStyle(body).visibility === 'hidden'
                && body.getBoundingClientRect().height === 0;
            return [e.classList.contains('dropdown'), hidden];
        })""",
    )
    assert solutions, f"{chapter}: no solutions on the page"
    assert all(dropdown and hidden for dropdown, hidden in solutions), (
        f"{chapter}: solutions not collapsed (dropdown, hidden): {solutions}"
    )
    # Jupyter Book 1 makes sphinx-thebe emit its configuration script twice on every page; the
    # second declaration throws, which only affects Thebe's live-code button (unused offline).
    errors = [e for e in errors if "THEBE_JS_URL" not in e]
    assert not errors, f"{chapter}: JavaScript errors: {errors}"
