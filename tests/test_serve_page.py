"""The web page in headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, against
a real uvicorn server on a free loopback port."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from serve_helpers import build_fake_artifacts, single_image_item

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="/usr/bin/chromium is absent (scripts/test.sh installs it: apt-get install chromium)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import uvicorn

    from fuserec.serve import create_app

    artifacts = build_fake_artifacts(tmp_path_factory.mktemp("page") / "run")
    app = create_app(artifacts, token="")
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        pytest.fail("uvicorn did not start")
    yield url, app.state.serving
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def test_page_recommends_explains_and_searches(server, browser, tmp_path):
    url, state = server
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url + "/")

    # pick a user: recommendations with images and explanations appear
    user = min(list(state.user_row)[1:], key=lambda u: len(state.seen_positions(u)))
    page.wait_for_selector("[data-testid=user-select] option", state="attached")
    page.select_option("[data-testid=user-select]", user)
    page.wait_for_function(
        "u => document.querySelector('#recs-title').textContent.includes(u)", arg=user)
    cards = page.locator("[data-testid=recs] [data-testid=card]")
    cards.first.wait_for()
    assert cards.count() == min(12, state.n_items - len(state.seen_positions(user)))
    first_img = cards.first.locator(".media img")
    first_img.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                           arg=first_img.element_handle())
    assert cards.first.locator(".bar span").count() == 3  # text / image / audio contributions
    assert "Because you liked" in cards.first.locator(".because").inner_text()
    assert cards.first.locator("audio").count() == 1

    # the diversity slider re-ranks
    before = cards.evaluate_all("cs => cs.map(c => c.dataset.id)")
    page.locator("[data-testid=diversity]").fill("0.9")
    page.wait_for_function(
        "ids => { const now = [...document.querySelectorAll('[data-testid=recs] .card')]"
        ".map(c => c.dataset.id); return now.length && now.join() !== ids.join(); }",
        arg=before)

    # like an item: it leaves the recommendations
    liked = page.locator("[data-testid=recs] [data-testid=card]").first.get_attribute("data-id")
    page.locator("[data-testid=recs] [data-testid=card]").first.locator(".like").click()
    page.wait_for_selector(".msg.ok", state="attached")  # shown, then fades after 2.5 s
    page.wait_for_function(
        "id => ![...document.querySelectorAll('[data-testid=recs] .card')]"
        ".some(c => c.dataset.id === id)", arg=liked)

    # search by text: the item whose text we typed comes first
    page.click("button[data-tab=search]")
    page.fill("[data-testid=search-text]", state.item_texts[4])
    page.click("[data-testid=search-button]")
    results = page.locator("[data-testid=search-results] [data-testid=card]")
    results.first.wait_for()
    assert results.first.get_attribute("data-id") == state.item_ids[4]

    # search by an uploaded image
    pos = single_image_item(state)
    image = state.catalog_root / state.item_media[pos]["images"][0]
    page.fill("[data-testid=search-text]", "")
    page.set_input_files("[data-testid=search-file]", str(image))
    page.click("[data-testid=search-button]")
    page.wait_for_function(
        "id => { const c = document.querySelector('[data-testid=search-results] .card');"
        " return c && c.dataset.id === id; }", arg=state.item_ids[pos])

    # the catalog tab lists items; a card opens the detail with similar items
    page.click("button[data-tab=catalog]")
    catalog = page.locator("[data-testid=catalog] [data-testid=card]")
    catalog.first.wait_for()
    assert catalog.count() == min(24, state.n_items)
    catalog.first.locator(".title").click()
    page.locator("[data-testid=detail] .grid [data-testid=card]").first.wait_for()
    page.screenshot(path=str(tmp_path / "page.png"))
    assert not errors, errors
