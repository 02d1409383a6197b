"""How the page's events are wired, where it decides what Gradio's front end does on every later event.

Gradio's front end keeps a loading status for every output of every server event that has run, for the
page's lifetime. On each later event (every live frame, twice) it re-reads the props of each of them and,
for a layout block, of every component inside it. A gr.Tabs output would make each live frame re-read the
whole page: measured in Chromium, about 400 extra prop copies and 4 ms of the page's main thread per frame.
"""

from __future__ import annotations

from collections.abc import Iterator

import gradio as gr
import pytest
from gradio.blocks import Block, BlockContext

from tests.app_server import RunningApp, run_stand_in_app
from tests.browser_session import browser_available

LAYOUT_LIMIT = 8  # components a layout block given as a server event's output may hold


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[gr.Blocks]:
    """The whole page as `python app.py` builds it, here with no models at all (it builds on any machine)."""
    from pipelines.loading import ModelOverrides
    from pipelines.startup import prepare_models
    from ui.page import AppConfig, build_page

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SWAPSPOT_MODEL_DIR", str(tmp_path_factory.mktemp("weights")))
        overrides = ModelOverrides(None, None, None, None)
        yield build_page(AppConfig(overrides, prepare_models(overrides, download=False), None, None, "auto"))


def components_inside(block: Block) -> int:
    children = getattr(block, "children", None) or []
    return sum(1 + components_inside(child) for child in children)


def blocks_of(page: gr.Blocks, ids_or_blocks: list[int] | list[Block]) -> list[Block]:
    return [page.blocks[item] if isinstance(item, int) else item for item in ids_or_blocks]


def test_no_server_event_outputs_a_big_layout_block(page: gr.Blocks) -> None:
    offenders = [
        (dependency.name, type(block).__name__, components_inside(block))
        for dependency in page.fns.values()
        if dependency.fn is not None
        for block in blocks_of(page, dependency.outputs)
        if isinstance(block, BlockContext) and components_inside(block) > LAYOUT_LIMIT
    ]
    assert not offenders, f"server events with a big layout output (event, block, components inside): {offenders}"


def test_the_play_link_opens_its_tab_in_the_browser_not_through_the_server(page: gr.Blocks) -> None:
    opened_by_script = [d for d in page.fns.values() if d.fn is None and d.js and "URLSearchParams" in d.js]
    assert len(opened_by_script) == 1
    assert not any(isinstance(block, gr.Tabs) for d in page.fns.values() for block in blocks_of(page, d.outputs))


def test_the_live_stream_outputs_hidden_relays_that_the_browser_copies_to_the_shown_components(
    page: gr.Blocks,
) -> None:
    # A shown output of the per-frame stream would have its status tracker redraw on every animation frame
    # while each frame is pending (about 40 page renders a second, measured).
    streams = [d for d in page.fns.values() if any(event == "stream" for _, event in d.targets)]
    assert len(streams) == 1
    relays = blocks_of(page, streams[0].outputs)
    assert len(relays) == 3 and not any(relay.visible for relay in relays)
    shown = []
    for relay in relays:
        copies = [
            d
            for d in page.fns.values()
            if any(target == relay._id and event == "change" for target, event in d.targets)
        ]
        assert len(copies) == 1 and copies[0].fn is None and copies[0].js, "copied in the browser, not the server"
        assert blocks_of(page, copies[0].inputs) == [relay]
        shown += blocks_of(page, copies[0].outputs)
    assert [block.elem_id for block in shown] == ["swapped", "spot-score", "live-stats"]
    assert all(block.visible for block in shown)


@pytest.fixture(scope="module")
def stand_in_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    with run_stand_in_app(tmp_path_factory.mktemp("page-app")) as running:
        yield running


@pytest.mark.browser
@pytest.mark.skipif(not browser_available(), reason="needs /usr/bin/chromium and playwright (see .ci/run)")
@pytest.mark.parametrize(
    ("width", "query", "tab", "code"),
    [
        (390, "?play=k7 qap", "Play (phones)", "K7QAP"),  # a phone: the tab's button is in Gradio's overflow menu
        (1280, "?play=AB12", "Play (phones)", "AB12"),
        (1280, "", "Live", None),
    ],
)
def test_the_play_link_opens_the_play_tab_with_the_code(
    stand_in_app: RunningApp, width: int, query: str, tab: str, code: str | None
) -> None:
    from playwright.sync_api import sync_playwright

    from tests.browser_session import BROWSER_ARGS, CHROMIUM

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 800})
            page.goto(stand_in_app.url + query, wait_until="domcontentloaded")
            page.wait_for_selector("#source-examples img", state="attached", timeout=60_000)
            selected = (
                "() => [...document.querySelectorAll('button[role=tab][aria-selected=true]')]"
                ".map(b => b.textContent.trim())"
            )
            if code is None:  # no link: the page stays on its first tab
                page.wait_for_timeout(1500)
                assert page.evaluate(selected) == [tab]
                return
            page.wait_for_function(f"() => ({selected})().includes({tab!r})", timeout=10_000)
            page.wait_for_function(
                f"() => document.querySelector('#play-code textarea, #play-code input')?.value === {code!r}",
                timeout=10_000,
            )
        finally:
            browser.close()
