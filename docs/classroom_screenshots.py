"""Screenshots of the "Spot the fake" game: the presenter view and a player's phone (390 x 844).

    python docs/classroom_screenshots.py            # needs /usr/bin/chromium and playwright

A game is started and played through the API (`class_*` endpoints): three players, round 1 revealed, round 2
with two votes in. Then headless Chromium opens the player view on a phone-sized page (a fourth player joins)
and the presenter view (the presenter opens the running game by its code and reveals round 2).
The app runs with the real SCRFD detector from ../shared when present (else a stand-in), an ArcFace-shaped
test recognizer and a tiny stand-in swapper, so the pictures show the page, not a real swap's quality.
Writes docs/classroom-presenter.png and docs/classroom-player.png.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gradio_client import Client  # noqa: E402

from tests.app_server import run_app, stand_in_model_args  # noqa: E402
from tests.browser_session import CHROMIUM  # noqa: E402

OUT = ROOT / "docs"
SHARED_DETECTOR = ROOT.parent / "shared" / "models" / "scrfd_2.5g_kps.onnx"


def play_through_api(url: str, difficulty: str) -> str:
    client = Client(url, verbose=False)
    code = str(client.predict(difficulty, 10, api_name="/class_new_game"))
    ids = {name: client.predict(code, name, api_name="/class_join") for name in ("ada", "bo", "cy")}
    client.predict(code, api_name="/class_next_round")
    for name, vote in (("ada", "fake"), ("bo", "real"), ("cy", "fake")):
        client.predict(code, ids[name], vote, api_name="/class_vote")
    client.predict(code, api_name="/class_reveal")
    client.predict(code, api_name="/class_next_round")
    for name, vote in (("ada", "fake"), ("cy", "real")):
        client.predict(code, ids[name], vote, api_name="/class_vote")
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detector", type=Path, default=SHARED_DETECTOR if SHARED_DETECTOR.is_file() else None)
    parser.add_argument("--difficulty", choices=("easy", "medium", "hard"), default="easy")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {"SWAPSPOT_MODEL_DIR": str(work / "weights")}
        with run_app(stand_in_model_args(work, args.detector), env, work / "app.log") as app:
            url = app.url
            code = play_through_api(url, args.difficulty)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=shutil.which("chromium") or CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
                )
                try:
                    # The player's phone: join, then the vote screen of round 2.
                    phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
                    phone.goto(f"{url}/?play={code}", wait_until="domcontentloaded")  # the join link
                    box = phone.locator("#play-code textarea, #play-code input").first
                    phone.wait_for_function(
                        "(code) => [...document.querySelectorAll('#play-code textarea, #play-code input')]"
                        ".some((e) => e.value === code && e.offsetParent !== null)",
                        arg=code,
                        timeout=60_000,
                    )
                    assert box.input_value() == code
                    phone.locator("#play-nickname textarea, #play-nickname input").first.fill("dee")
                    phone.locator("#play-join-button").click()
                    phone.wait_for_selector("#play-real", state="visible", timeout=60_000)
                    phone.wait_for_timeout(1500)
                    phone.evaluate("() => document.querySelector('#play-status').scrollIntoView({block: 'start'})")
                    phone.evaluate("() => window.scrollBy(0, -60)")  # show the tab bar too
                    phone.wait_for_timeout(300)
                    phone.screenshot(path=str(OUT / "classroom-player.png"))
                    # The presenter: open the running game by its code, reveal round 2.
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    page.goto(url, wait_until="domcontentloaded")
                    page.get_by_role("tab", name="Spot the fake").click()
                    page.locator("#class-resume-code textarea, #class-resume-code input").first.fill(code)
                    page.locator("#class-resume").click()
                    page.wait_for_function(
                        "() => document.querySelector('#class-status')?.innerText.includes('Round 2')", timeout=60_000
                    )
                    page.locator("#class-reveal").click()
                    page.wait_for_function(
                        "() => document.querySelector('#class-truth')?.innerText.includes('Round 2:')",
                        timeout=60_000,
                    )
                    page.wait_for_timeout(2000)
                    page.locator("#classroom-tab").screenshot(path=str(OUT / "classroom-presenter.png"))
                finally:
                    browser.close()
    print("wrote", OUT / "classroom-presenter.png", "and", OUT / "classroom-player.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
