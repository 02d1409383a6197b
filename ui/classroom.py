"""The "Spot the fake" classroom game: a presenter tab (projector) and a player tab (phones).

The rules live in `pipelines/classroom.py`; this module only wires them to the page. The page calls
`build_classroom(ctx)` once inside its `gr.Tabs()`: that creates the game registry (so every game lives in
this page's memory and nowhere else), the two tabs and the API endpoints `class_*` for gradio_client.
Items are sent to the browser inline (`in_memory_image`, no file in Gradio's cache) without download buttons.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import gradio as gr
from gradio.context import Context

from pipelines.classroom import (
    DIFFICULTIES,
    DIFFICULTY_TEXT,
    MAX_PHOTOS,
    MAX_ROUNDS,
    Difficulty,
    FacePhoto,
    Game,
    GameRegistry,
    ItemMaker,
    Round,
    availability_markdown,
    cards_markdown,
    cues_for,
    difficulty_problems,
    example_pool,
    normalise_code,
    reveal_json,
    round_result,
)
from pipelines.errors import InputError
from pipelines.image_io import load_image
from pipelines.outputs import new_output_dir
from ui.components import in_memory_image
from ui.context import CONSENT_LABEL, NO_CONSENT, UiContext, example_faces
from ui.errors import user_errors

POLL_S = 2.0  # presenter and players refresh their game state this often
PLAY_TAB_LABEL = "Play (phones)"
PLAY_LINK_PARAMETER = "play"  # `?play=CODE`: the link the presenter shows opens the Play tab with the code


def open_tab_js(parameter: str, label: str) -> str:
    """Browser code that opens the tab called `label` when the page's address has `?parameter=...`.

    Gradio gives a tab's button no stable id (on a narrow screen it sits in an overflow menu), so the button
    is found by its label. It is retried for a few seconds while the page renders."""
    return f"""() => {{
  if (!new URLSearchParams(window.location.search).has({json.dumps(parameter)})) return;
  let tries = 0;
  const open = () => {{
    const buttons = [...document.querySelectorAll("button")].filter(
      (b) => b.textContent.trim() === {json.dumps(label)} && b.getAttribute("tabindex") !== "-1");
    if (buttons.length) {{ buttons[0].click(); return; }}
    if (tries++ < 50) setTimeout(open, 100);
  }};
  open();
}}"""


NO_BUTTONS: list[Any] = []  # no download / share / fullscreen on game items

STYLE = """<style>
#class-code, #class-code p { font-size: 1.6rem !important; line-height: 1.3; }
#class-code code { font-size: 2.6rem !important; letter-spacing: 0.15em; padding: 0.1em 0.3em; }
#class-code small, #class-code small p { font-size: 1rem !important; }
#class-status p, #class-truth p { font-size: 1.35rem !important; }
#play-status p { font-size: 1.4rem !important; text-align: center; }
#play-feedback p { font-size: 1.25rem !important; text-align: center; }
button.play-vote { min-height: 4.2rem; font-size: 1.6rem !important; font-weight: 700; color: #fff !important; }
#play-real { background: #15803d !important; }
#play-fake { background: #b91c1c !important; }
</style>"""

JOIN_HELP = (
    "Players: open this page on your phone and choose the **Play (phones)** tab, type the code and a nickname "
    "(not your real name)."
)


def _difficulty(value: str) -> Difficulty:
    if value not in DIFFICULTIES:
        raise InputError(f"Unknown difficulty '{value}' (choose easy, medium or hard).")
    return cast(Difficulty, value)


class Classroom:
    """The page's games and the actions on them (shared by the tabs and the API)."""

    def __init__(self, ctx: UiContext) -> None:
        self.ctx = ctx
        self.registry = GameRegistry()
        self.maker = ItemMaker(ctx.services)
        self._examples: list[FacePhoto] | None = None

    def examples(self) -> list[FacePhoto]:
        if self._examples is None:
            self._examples = example_pool(example_faces(), load_image)
        return list(self._examples)

    def new_game(self, difficulty: str, rounds: float) -> Game:
        level = _difficulty(difficulty)
        self.maker.check(level)
        if not 1 <= int(rounds) <= MAX_ROUNDS:
            raise InputError(f"A game has 1 to {MAX_ROUNDS} rounds.")
        return self.registry.new_game(level, int(rounds))

    def add_photos(self, game: Game, paths: list[str], consent: bool, kind: str) -> int:
        """Teacher's photos or class snapshots: read into memory, resized, and the uploaded file deleted."""
        try:
            if paths and not consent:
                raise InputError(NO_CONSENT)
            for path in paths:
                with game.lock:
                    number = sum(1 for p in game.photos if p.name.startswith(kind)) + 1
                    if len(game.photos) >= MAX_PHOTOS:
                        raise InputError(f"A game holds at most {MAX_PHOTOS} photos.")
                photo = self.maker.check_photo(load_image(path), f"{kind} {number}")
                with game.lock:
                    game.photos.append(photo)
        finally:
            for path in paths:
                Path(path).unlink(missing_ok=True)
        return len(game.photos)

    def next_round(self, code: str) -> Round:
        game = self.registry.get(code)
        if not game.preparing.acquire(blocking=False):
            raise InputError("The next item is being prepared; one moment.")
        try:
            truth = game.next_truth()
            item = self.maker.make(game, truth)
            return game.begin_round(item)
        finally:
            game.preparing.release()

    def csv_file(self, code: str) -> str:
        """The results as a CSV file in the app's private output folder (deleted after 15 minutes)."""
        game = self.registry.get(code)
        path = new_output_dir(self.ctx.services.policy) / f"spot-the-fake-{game.code}.csv"
        path.write_text(game.csv_text(), encoding="utf-8")
        return str(path)


# -- words for the screens ---------------------------------------------------------------------------------


def code_markdown(game: Game, origin: str = "") -> str:
    link = f"<br>Or open **{origin}/?play={game.code}** (goes straight to the game)." if origin else ""
    return f"Join code: `{game.code}`\n\n<small>{JOIN_HELP}{link}</small>"


def page_origin(request: gr.Request | None) -> str:
    """The address the presenter's browser uses for this page (for the join link), or "" when unknown."""
    if request is None:
        return ""
    origin = str(request.headers.get("origin") or "")
    return origin if origin.startswith(("http://", "https://")) else ""


def status_markdown(game: Game) -> str:
    state = game.status()
    players = state["players"]
    head = f"**{players} player{'s' if players != 1 else ''}** · {DIFFICULTY_TEXT[game.difficulty]}"
    if state["phase"] == "waiting":
        return f"{head}\n\nWaiting to start: press **Next round** when everybody has joined."
    line = f"Round {state['round']} of {state['rounds_total']} · **{state['votes']} of {players} voted**"
    if state["phase"] == "revealed":
        line += " · revealed" + (" · **game over**: export the results, then end the game" if state["finished"] else "")
    return f"{head}\n\n{line}"


def scoreboard_markdown(game: Game) -> str:
    board = game.scoreboard()
    if not board["rounds"]:
        return "_The score appears after the first reveal._"
    lines = [
        f"### Class {board['class_correct']} : {board['detector_correct']} Detector "
        f"<small>(after {board['rounds_played']} of {board['rounds_total']} rounds; the class answer is the "
        "majority vote)</small>",
        "",
        "| round | truth | class votes (real / fake) | class | detector |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in board["rounds"]:
        score = "–" if r["detector_score"] is None else f"{r['detector_score'] * 100:.0f}% → {r['detector_answer']}"
        lines.append(
            f"| {r['round']} | {r['truth']} | {r['votes']['real']} / {r['votes']['fake']} | "
            f"{'✔' if r['class_correct'] else '✘'} {r['class_answer'] or 'tie'} | "
            f"{'✔' if r['detector_correct'] else '✘'} {score} |"
        )
    if board["class_mean_accuracy"] is not None:
        lines.append(f"\nAverage share of players who were right: **{board['class_mean_accuracy'] * 100:.0f}%**")
    top = [p for p in board["players"] if p["voted"]][:5]
    if top:
        lines.append("\nBest spotters: " + ", ".join(f"{p['nickname']} {p['correct']}/{p['voted']}" for p in top))
    return "\n".join(lines)


def reveal_markdown(info: dict[str, Any]) -> tuple[str, str, str]:
    """(the truth, the detector's reasons, the cues to look for)."""
    truth = "**FAKE** — a face swap" if info["truth"] == "fake" else "**REAL** — an unchanged photo"
    class_line = (
        f"Class: {info['votes']['real']} real / {info['votes']['fake']} fake → "
        f"{'✔ right' if info['class_correct'] else '✘ wrong'}"
    )
    if info["detector_score"] is None:
        detector = "Detector: no score (no detector or no face found)"
    else:
        detector = (
            f"Detector: {info['detector_score'] * 100:.0f}% likely swapped → {info['detector_answer']} "
            f"{'✔' if info['detector_correct'] else '✘'}"
        )
    head = f"Round {info['round']}: {truth}\n\n{class_line} · {detector}"
    why = "\n".join(
        [f"**What the detector saw** <small>({info['origin']})</small>", *(f"- {s}" for s in info["explanations"])]
    )
    if info["watermark"]:
        why += f"\n\n<small>Invisible watermark in this item: {info['watermark']}.</small>"
    cues = "\n".join(["**Cues to look for**", *(f"- **{c['card']}**: {c['look_for']}" for c in info["cues"])])
    return head, why, cues


def player_markdown(game: Game, player_id: str) -> tuple[str, str]:
    state = game.status(player_id)
    nickname = game.player(player_id).nickname
    if state["phase"] == "waiting":
        return f"Hi **{nickname}**! Waiting for the first round…", ""
    head = f"Round {state['round']} of {state['rounds_total']}"
    if state["phase"] == "voting":
        vote = state.get("my_vote")
        note = f"Your vote: **{vote.upper()}** — wait for the reveal" if vote else "Tap REAL or FAKE"
        return f"{head}: real or fake?", note
    right = state.get("i_was_right")
    verdict = "you did not vote" if right is None else "✔ you were right!" if right else "✘ not this time"
    mine = next((p for p in game.player_scores() if p["nickname"] == nickname), None)
    score = f" · your score {mine['correct']}/{mine['voted']}" if mine and mine["voted"] else ""
    end = " · **game over, thanks for playing!**" if state["finished"] else ""
    return f"{head}: it was **{str(state['truth']).upper()}**", f"{verdict}{score}{end}"


# -- the tabs ------------------------------------------------------------------------------------------------


def build_classroom(ctx: UiContext) -> None:
    """The "Spot the fake" presenter tab, the "Play (phones)" player tab and the `class_*` API endpoints."""
    room = Classroom(ctx)
    problems = difficulty_problems(ctx.services)
    playable = [d for d in DIFFICULTIES if problems[d] is None]
    choices = [(DIFFICULTY_TEXT[d] + ("" if problems[d] is None else " — unavailable"), d) for d in DIFFICULTIES]
    presenter = _presenter_tab(room, choices, playable)
    _player_tab(room)
    with presenter:  # the API's hidden components live inside a tab, as everything in gr.Tabs must
        _api(room)


def _presenter_tab(room: Classroom, choices: Sequence[tuple[str, str]], playable: list[Difficulty]) -> gr.Tab:
    with gr.Tab("Spot the fake", id="classroom-tab", elem_id="classroom-tab") as presenter:
        gr.HTML(STYLE, js_on_load=None, padding=False)
        code_state = gr.State("")
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                gr.Markdown("### Start a game\nFaces, some real, some swapped: the class votes, then the reveal.")
                difficulty = gr.Radio(
                    choices, value=playable[0] if playable else None, label="Difficulty", elem_id="class-difficulty"
                )
                rounds = gr.Slider(1, MAX_ROUNDS, value=10, step=1, label="Rounds", elem_id="class-rounds")
                use_examples = gr.Checkbox(value=True, label="Use the example faces")
                uploads = gr.File(
                    label="Your photos of faces (optional)", file_count="multiple", file_types=["image"], height=120
                )
                snapshot = gr.Image(
                    label="Snapshot taken in class (optional)", sources=["webcam"], type="filepath", height=200
                )
                consent = gr.Checkbox(label=CONSENT_LABEL + " (every person in the photos and snapshot)")
                start = gr.Button("New game", variant="primary", elem_id="class-start")
                with gr.Row():
                    resume_code = gr.Textbox(
                        label="…or open a running game (after a page reload)",
                        placeholder="code",
                        max_lines=1,
                        scale=2,
                        elem_id="class-resume-code",
                    )
                    resume = gr.Button("Open", size="sm", scale=1, elem_id="class-resume")
                gr.Markdown(
                    "<small>Photos stay in memory for this game only and are deleted when it ends (at the latest "
                    "after 2 hours). Nothing is stored; the CSV export holds no images.</small>\n\n"
                    + availability_markdown(room.ctx.services)
                )
            with gr.Column(scale=3):
                code_md = gr.Markdown("_Start a game to get a join code._", elem_id="class-code")
                status_md = gr.Markdown(elem_id="class-status")
                with gr.Row():
                    item_image = in_memory_image(
                        label="Real or fake?", interactive=False, buttons=NO_BUTTONS, height=520, elem_id="class-item"
                    )
                    overlay = in_memory_image(
                        label="Where the detector saw evidence",
                        interactive=False,
                        buttons=NO_BUTTONS,
                        height=520,
                        visible=False,
                        elem_id="class-overlay",
                    )
                with gr.Row():
                    next_button = gr.Button("Next round", variant="primary", size="lg", elem_id="class-next")
                    reveal_button = gr.Button("Reveal", variant="stop", size="lg", elem_id="class-reveal")
                truth_md = gr.Markdown(elem_id="class-truth")
                with gr.Row():
                    why_md = gr.Markdown(elem_id="class-why")
                    cues_md = gr.Markdown(elem_id="class-cues")
                score_md = gr.Markdown(elem_id="class-score")
                with gr.Row():
                    export = gr.Button("Export results (CSV, no images)", size="sm")
                    end = gr.Button("End game and delete everything", size="sm", variant="stop")
                csv_out = gr.File(label="Results", interactive=False, visible=False)
        with gr.Accordion("Teaching cards: what to look for, and what the detector measures", open=False):
            gr.Markdown(cards_markdown(), elem_id="class-cards")
        timer = gr.Timer(POLL_S, active=False)

    @user_errors
    def start_game(
        level: str, count: float, examples: bool, files: Any, snap: str | None, agreed: bool, request: gr.Request
    ) -> tuple:
        paths = [str(f) for f in (files or [])]
        game = room.new_game(level, count)
        try:
            if examples:
                game.photos.extend(room.examples())
            room.add_photos(game, paths, agreed, "teacher photo")
            room.add_photos(game, [snap] if snap else [], agreed, "class snapshot")
            if len(game.photos) < 2:
                raise InputError("A game needs at least two face photos: tick the example faces or add photos.")
        except Exception:
            room.registry.end(game.code)
            raise
        return (
            game.code,
            code_markdown(game, page_origin(request)),
            status_markdown(game),
            None,
            gr.update(value=None, visible=False),
            "",
            "",
            "",
            scoreboard_markdown(game),
            gr.update(value=None, visible=False),
            gr.Timer(active=True),
            None,
            None,
        )

    # Starting, opening and ending a game refresh the whole presenter view (starting also clears the uploads).
    game_view = [
        code_state,
        code_md,
        status_md,
        item_image,
        overlay,
        truth_md,
        why_md,
        cues_md,
        score_md,
        csv_out,
        timer,
    ]

    start.click(
        start_game,
        [difficulty, rounds, use_examples, uploads, snapshot, consent],
        [*game_view, uploads, snapshot],
        api_visibility="private",
    )

    @user_errors
    def open_game(code: str, request: gr.Request) -> tuple:
        game = room.registry.get(code)
        played = game.current
        picture: Any = None
        overlay_update: Any = gr.update(value=None, visible=False)
        head = why = cues = ""
        if played is not None and played.revealed:
            picture = played.item.revealed
            overlay_update = gr.update(value=played.item.overlay, visible=played.item.overlay is not None)
            head, why, cues = reveal_markdown(reveal_json(game, round_result(played), played.item))
        elif played is not None:
            picture = played.item.shown
            head = f"Round {played.number}: **real or fake?** Vote on your phones."
        return (
            game.code,
            code_markdown(game, page_origin(request)),
            status_markdown(game),
            picture,
            overlay_update,
            head,
            why,
            cues,
            scoreboard_markdown(game),
            gr.update(value=None, visible=False),
            gr.Timer(active=True),
        )

    resume.click(
        open_game,
        [resume_code],
        game_view,
        api_visibility="private",
    )

    @user_errors
    def next_item(code: str) -> tuple:
        if not code:
            raise InputError("Start a game first.")
        played = room.next_round(code)
        game = room.registry.get(code)
        return (
            played.item.shown,
            gr.update(value=None, visible=False),
            f"Round {played.number}: **real or fake?** Vote on your phones.",
            "",
            "",
            status_markdown(game),
        )

    next_button.click(
        next_item,
        [code_state],
        [item_image, overlay, truth_md, why_md, cues_md, status_md],
        api_visibility="private",
        concurrency_limit=2,
    )

    @user_errors
    def reveal(code: str) -> tuple:
        if not code:
            raise InputError("Start a game first.")
        game = room.registry.get(code)
        result = game.reveal(room.registry.now())
        item = game.rounds[-1].item
        head, why, cues = reveal_markdown(reveal_json(game, result, item))
        return (
            item.revealed,
            gr.update(value=item.overlay, visible=item.overlay is not None),
            head,
            why,
            cues,
            scoreboard_markdown(game),
            status_markdown(game),
        )

    reveal_button.click(
        reveal,
        [code_state],
        [item_image, overlay, truth_md, why_md, cues_md, score_md, status_md],
        api_visibility="private",
    )

    @user_errors
    def export_csv(code: str) -> Any:
        if not code:
            raise InputError("Start a game first.")
        return gr.update(value=room.csv_file(code), visible=True)

    export.click(export_csv, [code_state], [csv_out], api_visibility="private")

    def end_game(code: str) -> tuple:
        if code:
            room.registry.end(code)
        return (
            "",
            "_Game ended: its photos, votes and scores are deleted. Start a new game for a new code._",
            "",
            None,
            gr.update(value=None, visible=False),
            "",
            "",
            "",
            "",
            gr.update(value=None, visible=False),
            gr.Timer(active=False),
        )

    end.click(
        end_game,
        [code_state],
        game_view,
        api_visibility="private",
    )

    def refresh(code: str) -> Any:
        try:
            return status_markdown(room.registry.get(code)) if code else gr.update()
        except InputError as error:
            return str(error)

    timer.tick(refresh, [code_state], [status_md], api_visibility="private", show_progress="hidden")
    return presenter


def _player_tab(room: Classroom) -> None:
    with gr.Tab(PLAY_TAB_LABEL, id="play-tab", elem_id="play-tab"):
        gr.HTML(STYLE, js_on_load=None, padding=False)  # each tab: Gradio renders only the selected one
        me = gr.State({"code": "", "player": "", "round": -1, "phase": ""})
        with gr.Column(elem_id="play-join") as join_box:
            code = gr.Textbox(label="Game code", placeholder="e.g. K7QAP", max_lines=1, elem_id="play-code")
            nickname = gr.Textbox(
                label="Nickname (not your real name)", max_lines=1, max_length=20, elem_id="play-nickname"
            )
            join = gr.Button("Join the game", variant="primary", size="lg", elem_id="play-join-button")
        status = gr.Markdown("Type the code shown on the projector.", elem_id="play-status")
        image = in_memory_image(
            show_label=False, interactive=False, buttons=NO_BUTTONS, visible=False, height=340, elem_id="play-item"
        )
        with gr.Row(equal_height=True):
            real = gr.Button("REAL", size="lg", elem_classes=["play-vote"], elem_id="play-real", visible=False)
            fake = gr.Button(
                "FAKE", size="lg", variant="stop", elem_classes=["play-vote"], elem_id="play-fake", visible=False
            )
        feedback = gr.Markdown(elem_id="play-feedback")
        timer = gr.Timer(POLL_S, active=False)

    def screen(current: dict[str, Any], force: bool = False) -> tuple:
        game = room.registry.get(current["code"])
        state = game.status(current["player"])
        head, note = player_markdown(game, current["player"])
        changed = force or state["round"] != current["round"] or state["phase"] != current["phase"]
        played = game.current
        picture: Any = gr.update()
        if changed:
            picture = gr.update(value=None, visible=False)
            if played is not None:
                shown = played.item.revealed if played.revealed else played.item.shown
                picture = gr.update(value=shown, visible=True)
        voting = state["phase"] == "voting" and state.get("my_vote") is None
        updated = {**current, "round": state["round"], "phase": state["phase"]}
        return updated, head, picture, gr.update(visible=voting), gr.update(visible=voting), note

    outputs = [me, status, image, real, fake, feedback]

    @user_errors
    def join_game(game_code: str, name: str) -> tuple:
        game = room.registry.get(game_code)
        player = game.join(name)
        current = {"code": game.code, "player": player.id, "round": -1, "phase": ""}
        return (*screen(current, force=True), gr.update(visible=False), gr.Timer(active=True))

    join.click(join_game, [code, nickname], [*outputs, join_box, timer], api_visibility="private")

    def poll(current: dict[str, Any]) -> tuple:
        if not current.get("player"):
            return (current, gr.update(), gr.update(), gr.update(), gr.update(), gr.update())
        try:
            return screen(current)
        except InputError:
            gone = {**current, "player": ""}
            hidden = gr.update(visible=False)
            return (gone, "This game has ended. Thanks for playing!", hidden, hidden, hidden, "")

    timer.tick(poll, [me], outputs, api_visibility="private", show_progress="hidden", concurrency_limit=8)

    def voter(choice: str) -> Any:
        @user_errors
        def cast_vote(current: dict[str, Any]) -> tuple:
            if not current.get("player"):
                raise InputError("Join a game first.")
            room.registry.get(current["code"]).vote(current["player"], choice)
            return screen(current, force=False)

        return cast_vote

    # `?play=CODE` in the address opens this tab with the code filled in (the link the presenter shows). The
    # tab is opened in the browser: a gr.Tabs output of a server event would stay in Gradio's loading-status
    # list for the page's lifetime, and every event after it (each live frame, twice) re-reads the props of
    # every component in every tab.
    root = Context.root_block

    def arrive(request: gr.Request) -> Any:
        wanted = request.query_params.get("play") if request is not None else None
        return gr.update() if wanted is None else gr.update(value=normalise_code(wanted)[:12])

    if root is not None:
        root.load(None, None, None, js=open_tab_js(PLAY_LINK_PARAMETER, PLAY_TAB_LABEL))
        root.load(arrive, None, [code], api_visibility="private", show_progress="hidden")

    real.click(voter("real"), [me], outputs, api_visibility="private", concurrency_limit=8)
    fake.click(voter("fake"), [me], outputs, api_visibility="private", concurrency_limit=8)


def _api(room: Classroom) -> None:
    """`class_*` endpoints, so a script or a test can run a whole game through gradio_client."""
    with gr.Row(visible=False):
        code = gr.Textbox()
        text = gr.Textbox()
        number = gr.Number()
        consent = gr.Checkbox()
        photo = gr.File()
        result_text = gr.Textbox()
        result_json = gr.JSON()
        result_image = in_memory_image(buttons=NO_BUTTONS)
        result_image2 = in_memory_image(buttons=NO_BUTTONS)
        result_file = gr.File()
        go = gr.Button()

    @user_errors
    def api_new_game(difficulty: str, rounds: float) -> str:
        game = room.new_game(difficulty, rounds)
        game.photos.extend(room.examples())
        return game.code

    @user_errors
    def api_add_photo(game_code: str, path: str | None, agreed: bool) -> float:
        if not path:
            raise InputError("Give a photo of a face.")
        return room.add_photos(room.registry.get(game_code), [path], agreed, "teacher photo")

    @user_errors
    def api_join(game_code: str, nickname: str) -> str:
        return room.registry.get(game_code).join(nickname).id

    @user_errors
    def api_next_round(game_code: str) -> tuple:
        played = room.next_round(game_code)
        return played.item.shown, {"round": played.number, "difficulty": played.item.difficulty}

    @user_errors
    def api_vote(game_code: str, player: str, vote: str) -> dict[str, Any]:
        played = room.registry.get(game_code).vote(player, vote)
        return {"round": played.number, "votes": len(played.votes)}

    @user_errors
    def api_reveal(game_code: str) -> tuple:
        game = room.registry.get(game_code)
        result = game.reveal(room.registry.now())
        item = game.rounds[-1].item
        info = reveal_json(game, result, item)
        info["cue_cards"] = [c.key for c in cues_for(item)]
        return item.revealed, item.overlay, info

    @user_errors
    def api_status(game_code: str, player: str) -> dict[str, Any]:
        return room.registry.get(game_code).status(player or None)

    @user_errors
    def api_scoreboard(game_code: str) -> dict[str, Any]:
        return room.registry.get(game_code).scoreboard()

    @user_errors
    def api_csv(game_code: str) -> str:
        return room.csv_file(game_code)

    @user_errors
    def api_end(game_code: str) -> bool:
        return room.registry.end(game_code)

    go.click(api_new_game, [text, number], [result_text], api_name="class_new_game")
    go.click(api_add_photo, [code, photo, consent], [number], api_name="class_add_photo")
    go.click(api_join, [code, text], [result_text], api_name="class_join")
    go.click(api_next_round, [code], [result_image, result_json], api_name="class_next_round")
    go.click(api_vote, [code, text, result_text], [result_json], api_name="class_vote", concurrency_limit=8)
    go.click(api_reveal, [code], [result_image, result_image2, result_json], api_name="class_reveal")
    go.click(api_status, [code, text], [result_json], api_name="class_status", concurrency_limit=8)
    go.click(api_scoreboard, [code], [result_json], api_name="class_scoreboard")
    go.click(api_csv, [code], [result_file], api_name="class_csv")
    go.click(api_end, [code], [consent], api_name="class_end")
