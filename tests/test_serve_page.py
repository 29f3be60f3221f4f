"""The web page in headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, against
a real uvicorn server on a free loopback port."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from serve_helpers import build_fake_artifacts, single_image_item, start_server

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="/usr/bin/chromium is absent (scripts/test.sh installs it: apt-get install chromium)")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return build_fake_artifacts(tmp_path_factory.mktemp("page") / "run")


@pytest.fixture(scope="module")
def server(artifacts):
    yield from _serve(artifacts, token="")


@pytest.fixture(scope="module")
def token_server(artifacts):
    """A server with a token and private reads (as ``fuserec serve`` with a token)."""
    yield from _serve(artifacts, token=TOKEN, public_reads=False)


TOKEN = "page-s3cret"


def _serve(artifacts, **kwargs):

    from fuserec.serve import create_app

    app = create_app(artifacts, **kwargs)
    url, srv, thread = start_server(app)
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
    page.wait_for_selector("#users-list option", state="attached")
    page.fill("[data-testid=user-select]", user)
    page.press("[data-testid=user-select]", "Enter")
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
    # shares are non-negative percentages of the positive part; the score is labelled
    legend = cards.locator(".legend span").all_inner_texts()
    assert legend and all(re.fullmatch(r"(text|image|audio) \d+%", t) for t in legend), legend
    assert cards.first.locator(".score").inner_text().startswith("score ")
    assert "Because they liked" in cards.first.locator(".because").inner_text()
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
    page.wait_for_selector("[data-testid=note].ok", state="visible")
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
    assert page.locator("[data-testid=user-controls]").is_hidden()  # no user on this tab
    assert page.locator("[data-testid=catalog] .like").count() == 0
    catalog.first.locator(".title").click()
    page.locator("[data-testid=detail] .grid [data-testid=card]").first.wait_for()
    page.screenshot(path=str(tmp_path / "page.png"))
    assert not errors, errors


def _open(browser, url, width=1366, height=900):
    """A fresh page (own storage) at ``url``; page errors are collected in ``page.errors``."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.goto(url)
    return page


def _rec_ids(page):
    return page.locator("[data-testid=recs] [data-testid=card]").evaluate_all(
        "cs => cs.map(c => c.dataset.id)")


def test_new_read_endpoints_attributes_and_popular(server):
    url, state = server
    attrs = {a["name"]: a for a in httpx.get(f"{url}/attributes").json()}
    assert set(attrs) == {"price", "year"}
    assert attrs["year"]["kind"] == "number" and attrs["year"]["min"] <= attrs["year"]["max"]
    popular = httpx.get(f"{url}/items/popular", params={"k": 5, "filter": "year>=2000"}).json()
    scores = [r["score"] for r in popular["results"]]
    assert 0 < len(scores) <= 5 and scores == sorted(scores, reverse=True)
    assert all(float(r["item"]["attributes"]["year"]) >= 2000 for r in popular["results"])
    bad = httpx.get(f"{url}/items/popular", params={"filter": "genre==rock"})
    assert bad.status_code == 422


def test_like_confirms_survives_refresh_and_shows_in_history(server, browser):
    url, state = server
    user = sorted(state.user_row)[3]
    page = _open(browser, f"{url}/?user={user}")
    page.locator("[data-testid=recs] [data-testid=card]").first.wait_for()
    history = page.locator("[data-testid=history]")
    history.wait_for()
    assert history.locator("[data-testid=history-item]").count() > 0  # the history is shown
    first = page.locator("[data-testid=recs] [data-testid=card]").first
    liked, title = first.get_attribute("data-id"), first.locator(".title").inner_text()
    first.locator(".like").click()
    # the refresh has happened (the liked card left the list) and the confirmation is still up
    page.wait_for_function("id => !document.querySelector(`[data-testid=recs] "
                           "[data-id='${id}']`)", arg=liked)
    page.locator("[data-testid=history-item].fresh").first.wait_for()
    note = page.locator("[data-testid=note]")
    assert note.is_visible() and title in note.inner_text()
    assert "ok" in note.get_attribute("class")
    fresh = page.locator("[data-testid=history-item].fresh").first
    assert fresh.get_attribute("data-id") == liked and "liked" in fresh.inner_text()
    assert page.locator("[data-testid=error]").is_hidden()
    assert not page.errors, page.errors
    page.context.close()


def test_like_without_token_points_to_the_token_box_and_remembers_it(token_server, browser):
    url, state = token_server
    user = sorted(state.user_row)[2]
    page = _open(browser, f"{url}/?user={user}")
    cards = page.locator("[data-testid=recs] [data-testid=card]")
    cards.first.wait_for()
    assert page.locator("#recs-title").inner_text() == "Popular items"  # no token: no user data
    cards.first.locator(".like").click()
    note = page.locator("[data-testid=note]")
    note.wait_for()
    assert "info" in note.get_attribute("class") and "Token box" in note.inner_text()
    assert page.evaluate("document.activeElement.id") == "token"
    assert page.locator("[data-testid=error]").is_hidden()  # advice, not a red error
    assert not state.feedback.get(user)

    page.fill("[data-testid=token]", TOKEN)
    page.press("[data-testid=token]", "Enter")
    page.wait_for_function("u => document.querySelector('#recs-title').textContent"
                           ".includes(u)", arg=user)
    page.reload()  # the token is remembered in this browser
    page.wait_for_function("u => document.querySelector('#recs-title').textContent"
                           ".includes(u)", arg=user)
    assert page.input_value("[data-testid=token]") == TOKEN
    target = page.locator("[data-testid=recs] [data-testid=card]").first
    liked = target.get_attribute("data-id")
    target.locator(".like").click()
    page.locator("[data-testid=note].ok").wait_for()
    assert state.feedback[user].get(state.position(liked))
    assert not page.errors, page.errors
    page.context.close()


def test_unknown_user_sees_popular_items_and_the_picker_searches(server, browser):
    url, state = server
    page = _open(browser, f"{url}/?user=nobody")
    cards = page.locator("[data-testid=recs] [data-testid=card]")
    cards.first.wait_for()
    assert page.locator("#recs-title").inner_text() == "Popular items"
    assert "no user “nobody”" in page.locator("[data-testid=recs-sub]").inner_text()
    assert page.locator("[data-testid=error]").is_hidden()
    assert "popularity" in cards.first.locator(".score").inner_text()
    # the picker is a text box with suggestions of every user
    options = page.locator("#users-list option").evaluate_all("os => os.map(o => o.value)")
    assert set(options) == set(state.user_row)
    assert page.get_attribute("[data-testid=user-select]", "list") == "users-list"
    user = sorted(state.user_row)[5]
    page.fill("[data-testid=user-select]", user)
    page.press("[data-testid=user-select]", "Enter")
    page.wait_for_function("u => document.querySelector('#recs-title').textContent"
                           ".includes(u)", arg=user)
    assert f"user={user}" in page.url  # the link keeps the user
    assert not page.errors, page.errors
    page.context.close()


def test_filter_controls_hint_and_clean_errors(server, browser):
    url, state = server
    user = sorted(state.user_row)[4]
    page = _open(browser, f"{url}/?user={user}")
    page.locator("[data-testid=recs] [data-testid=card]").first.wait_for()
    # controls generated from the catalog's attributes, with its ranges as placeholders
    year_min = page.locator("[data-testid=facet-year-min]")
    assert year_min.get_attribute("placeholder") == "1990"
    year_min.fill("2010")
    year_min.dispatch_event("change")
    page.wait_for_function("() => location.search.includes('filter=year')")
    page.wait_for_function(
        "() => { const cs = [...document.querySelectorAll('[data-testid=recs] .card')];"
        " return cs.length && cs.every(c => [...c.querySelectorAll('.chip')]"
        ".some(x => x.textContent.startsWith('year ') && +x.textContent.slice(5) >= 2010)); }")
    # the advanced text filter says how to write several; errors drop the attr_ prefix
    page.click("#advanced summary")
    assert "comma" in page.locator("[data-testid=filter-hint]").inner_text()
    page.fill("[data-testid=filter]", "genre==rock")
    page.press("[data-testid=filter]", "Enter")
    error = page.locator("[data-testid=error]")
    error.wait_for()
    assert "genre" in error.inner_text() and "attr_" not in error.inner_text()
    assert page.locator("[data-testid=recs] [data-testid=card]").count() == 0  # old cards gone
    # a link with the filters restores them into the controls
    page2 = page.context.new_page()
    page2.goto(f"{url}/?user={user}&filter=year%3E%3D2010&filter=price%3C20&diversity=0.5")
    page2.locator("[data-testid=recs] [data-testid=card]").first.wait_for()
    assert page2.input_value("[data-testid=facet-year-min]") == "2010"
    assert page2.input_value("[data-testid=filter]") == "price<20"
    assert "variety" in page2.locator("[data-testid=recs-sub]").inner_text()  # diversity on
    assert not page.errors, page.errors
    page.context.close()


def test_search_file_can_be_removed_errors_clear_and_weak_matches(server, browser):
    url, state = server
    page = _open(browser, f"{url}/?tab=search")
    # only the filters apply here: no user, diversity or explain controls
    page.locator("[data-testid=search-form]").wait_for()
    assert page.locator("[data-testid=user-controls]").is_hidden()
    assert page.locator("[data-testid=filters]").is_visible()
    assert "＋" not in page.locator("[data-testid=search-form]").inner_text()
    pos = single_image_item(state)
    image = state.catalog_root / state.item_media[pos]["images"][0]
    page.set_input_files("[data-testid=search-file]", str(image))
    chip = page.locator("[data-testid=search-file-chip]")
    assert chip.is_visible() and image.name in chip.inner_text()
    page.click("[data-testid=search-file-remove]")
    assert chip.is_hidden()
    assert page.evaluate("document.querySelector('#qfile').files.length") == 0

    page.fill("[data-testid=search-text]", "zzz qqq nothing like this")
    page.click("[data-testid=search-button]")
    results = page.locator("[data-testid=search-results] [data-testid=card]")
    results.first.wait_for()
    scores = [float(t.split()[-1]) for t in results.locator(".score").all_inner_texts()]
    weak = [c.locator("[data-testid=weak]").count() == 1 for c in results.all()]
    assert weak == [s < 0.2 for s in scores] and any(weak)
    assert "match" in results.first.locator(".score").inner_text()

    page.click("#advanced summary")
    page.fill("[data-testid=filter]", "genre==rock")
    page.press("[data-testid=filter]", "Enter")
    page.locator("[data-testid=error]").wait_for()
    assert results.count() == 0  # old results do not stay under the error
    assert not page.errors, page.errors
    page.context.close()


def test_phone_has_no_sideways_scroll_and_the_dialog_fits(server, browser):
    url, state = server
    user = sorted(state.user_row)[1]
    page = _open(browser, f"{url}/?user={user}", width=390, height=844)
    page.locator("[data-testid=recs] [data-testid=card]").first.wait_for()
    fits = "document.documentElement.scrollWidth <= window.innerWidth"
    assert page.evaluate(fits)
    for tab in ("search", "catalog", "overview"):
        page.click(f"button[data-tab={tab}]")
        page.wait_for_timeout(100)
        assert page.evaluate(fits), tab
    assert "tab=overview" in page.url
    page.locator("[data-testid=overview-popular] [data-testid=card]").first.wait_for()
    page.click("button[data-tab=catalog]")
    page.locator("[data-testid=catalog] [data-testid=card] .title").first.click()
    page.locator("[data-testid=detail] .grid [data-testid=card]").first.wait_for()
    box = page.locator("[data-testid=detail]").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert page.evaluate("(() => { const d = document.querySelector('#detail');"
                         " return d.scrollWidth <= d.clientWidth; })()")
    assert not page.errors, page.errors
    page.context.close()


def test_overview_shows_catalog_and_served_model(server, browser):
    url, state = server
    health = httpx.get(f"{url}/health").json()
    page = _open(browser, f"{url}/?tab=overview")
    page.locator("[data-testid=overview-popular] [data-testid=card]").first.wait_for()
    stats = page.locator("[data-testid=stats]").inner_text()
    assert str(health["items"]) in stats and health["model"] in stats
    assert page.locator("[data-testid=panel]").is_hidden()
    assert not page.errors, page.errors
    page.context.close()


def test_like_then_undo_unmarks_it_from_the_note_or_the_history(server, browser):
    url, state = server
    user = sorted(state.user_row)[5]
    page = _open(browser, f"{url}/?user={user}")
    cards = page.locator("[data-testid=recs] [data-testid=card]")
    cards.first.wait_for()
    for how in ("note", "history"):
        first = cards.first
        liked, title = first.get_attribute("data-id"), first.locator(".title").inner_text()
        first.locator(".like").click()
        # liked: confirmed, marked in the history, gone from the recommendations
        page.wait_for_function("id => !document.querySelector(`[data-testid=recs] "
                               "[data-id='${id}']`)", arg=liked)
        marked = page.locator(f"[data-testid=history-item].fresh[data-id='{liked}']")
        marked.wait_for()
        note = page.locator("[data-testid=note]")
        assert note.is_visible() and title in note.inner_text()
        assert state.feedback[user].get(state.position(liked))
        if how == "note":
            page.click("[data-testid=note-action]")
        else:
            page.locator(".hist-row", has=marked).locator("[data-testid=history-undo]").click()
        # undone: unmarked, recommended again, the server forgot the feedback
        page.wait_for_function("id => !!document.querySelector(`[data-testid=recs] "
                               "[data-id='${id}']`)", arg=liked)
        assert marked.count() == 0
        assert "Undone" in note.inner_text() and title in note.inner_text()
        assert not state.feedback[user].get(state.position(liked))
    assert page.locator("[data-testid=error]").is_hidden()
    assert not page.errors, page.errors
    page.context.close()


def test_phone_first_screen_shows_recommendations_and_folds_the_options(server, browser):
    url, state = server
    user = sorted(state.user_row)[6]
    page = _open(browser, f"{url}/?user={user}", width=390, height=844)
    first = page.locator("[data-testid=recs] [data-testid=card]").first
    first.wait_for()
    page.wait_for_timeout(200)  # history and images settle
    box = first.bounding_box()
    assert box is not None and 0 <= box["y"] < 844, box  # a card starts on the first screen
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.locator("[data-testid=facets]").is_hidden()
    assert page.locator("[data-testid=user-select]").is_visible()  # the user stays at hand
    page.click("[data-testid=panel-toggle]")
    assert page.locator("[data-testid=facets]").is_visible()
    assert page.get_attribute("[data-testid=panel-toggle]", "aria-expanded") == "true"
    page.fill("[data-testid=facet-year-min]", "2000")
    page.press("[data-testid=facet-year-min]", "Enter")
    page.click("[data-testid=panel-toggle]")  # folded again: the toggle says a filter is on
    assert page.locator("[data-testid=facets]").is_hidden()
    assert "(1 on)" in page.locator("[data-testid=panel-toggle]").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert not page.errors, page.errors
    page.context.close()
    wide = _open(browser, f"{url}/?user={user}")  # a wide screen shows everything, no toggle
    wide.locator("[data-testid=recs] [data-testid=card]").first.wait_for()
    assert wide.locator("[data-testid=facets]").is_visible()
    assert wide.locator("[data-testid=panel-toggle]").is_hidden()
    wide.context.close()


def test_overview_shows_most_recommended_after_popular_before(artifacts, browser):
    serving = _serve(artifacts, token="")  # a server of its own: nothing recommended yet
    url, state = next(serving)
    try:
        # an unknown user: the page asks for no recommendations of its own in the background
        page = _open(browser, f"{url}/?tab=overview&user=nobody")
        cards = page.locator("[data-testid=overview-popular] [data-testid=card]")
        cards.first.wait_for()
        assert page.locator("[data-testid=overview-title]").inner_text() == "Most popular items"
        assert "Nothing has been recommended" in \
            page.locator("[data-testid=overview-sub]").inner_text()
        user = sorted(state.user_row)[0]
        recs = httpx.get(f"{url}/users/{user}/recommendations", params={"k": 4}).json()
        given = {r["item"]["id"] for r in recs["results"]}
        page.reload()
        page.wait_for_function("() => document.querySelector('[data-testid=overview-title]')"
                               ".textContent === 'Most recommended items'")
        cards.first.wait_for()
        shown = set(cards.evaluate_all("cs => cs.map(c => c.dataset.id)"))
        assert shown == given
        assert "recommended 1×" in cards.first.locator(".score").inner_text()
        assert "1 recommendation answer" in \
            page.locator("[data-testid=overview-sub]").inner_text()
        assert not page.errors, page.errors
        page.context.close()
    finally:
        next(serving, None)
