"""Spot the fake: the game's rules (scoring, votes, CSV, codes, expiry) and a full 10-round game with three
players driven through gradio_client against the running app (tiny stand-in models)."""

from __future__ import annotations

import base64
import csv
import io
import random
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest

from pipelines.classroom import (
    AFTER_GAME_S,
    CARDS,
    CODE_ALPHABET,
    CODE_LENGTH,
    GAME_TTL_S,
    FacePhoto,
    Game,
    GameRegistry,
    Item,
    Truth,
    cues_for,
    degrade,
    difficulty_problems,
    round_result,
)
from pipelines.errors import InputError
from tests.app_server import ROOT, RunningApp, run_stand_in_app

# -- the rules -------------------------------------------------------------------------------------------------


def item(truth: Truth, score: float | None, contributions: dict[str, float] | None = None, level: Any = "easy") -> Item:
    image = np.zeros((8, 8, 3), np.uint8)
    return Item(truth, level, "test", image, image, score, ("why",), contributions or {})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def play(game: Game, score: float | None, votes: dict[str, str]) -> None:
    game.begin_round(item(game.next_truth(), score, level=game.difficulty))
    for player, vote in votes.items():
        game.vote(player, vote)
    game.reveal(0.0)


def test_vote_rules() -> None:
    game = Game("ABCDE", "easy", 2, 0.0, random.Random(1))
    ada = game.join("Ada").id
    with pytest.raises(InputError, match="taken"):
        game.join(" ada ")
    with pytest.raises(InputError, match="not started"):
        game.vote(ada, "fake")
    game.begin_round(item(game.next_truth(), 0.9))
    with pytest.raises(InputError, match="real' or 'fake"):
        game.vote(ada, "maybe")
    with pytest.raises(InputError, match="not in this game"):
        game.vote("someone-else", "fake")
    with pytest.raises(InputError, match="Reveal the current round"):
        game.next_truth()
    game.vote(ada, "FAKE")
    with pytest.raises(InputError, match="one vote per round"):
        game.vote(ada, "real")
    game.reveal(0.0)
    bo = game.join("Bo").id  # late joiners are welcome
    with pytest.raises(InputError, match="already been revealed"):
        game.vote(bo, "real")
    assert game.rounds[0].votes == {ada: "fake"}
    game.begin_round(item(game.next_truth(), 0.1))
    game.reveal(5.0)
    assert game.finished_at == 5.0
    with pytest.raises(InputError, match="All rounds"):
        game.next_truth()
    with pytest.raises(InputError, match="over"):
        game.join("Cy")


def test_round_scoring_majority_tie_and_detector() -> None:
    played = SimpleNamespace(number=1, item=item("fake", 0.7), votes={"a": "fake", "b": "fake", "c": "real"})
    result = round_result(played)  # type: ignore[arg-type]
    assert (result.votes_real, result.votes_fake, result.class_answer) == (1, 2, "fake")
    assert result.class_correct and result.class_accuracy == pytest.approx(2 / 3)
    assert result.detector_answer == "fake" and result.detector_correct
    tie = round_result(SimpleNamespace(number=2, item=item("real", 0.5), votes={"a": "fake", "b": "real"}))  # type: ignore[arg-type]
    assert tie.class_answer is None and not tie.class_correct and tie.class_accuracy == 0.5
    assert tie.detector_answer == "fake" and not tie.detector_correct  # 0.5 is the threshold: "swapped"
    blind = round_result(SimpleNamespace(number=3, item=item("real", None), votes={}))  # type: ignore[arg-type]
    assert blind.class_accuracy is None and not blind.class_correct
    assert blind.detector_answer is None and not blind.detector_correct


def test_scoreboard_and_csv() -> None:
    game = Game("ABCDE", "medium", 3, 0.0, random.Random(7))
    ids = {name: game.join(name).id for name in ("ada", "bo", "=cy")}
    truths = list(game.plan)
    play(game, 0.9, {ids["ada"]: "fake", ids["bo"]: "real", ids["=cy"]: truths[0]})
    play(game, 0.2, {ids["ada"]: "fake", ids["=cy"]: truths[1]})  # bo skips a round
    play(game, None, {ids["ada"]: "real", ids["bo"]: "real", ids["=cy"]: "fake"})
    board = game.scoreboard()
    detector = [(0.9 >= 0.5) == (truths[0] == "fake"), (0.2 >= 0.5) == (truths[1] == "fake"), False]
    assert board["detector_correct"] == sum(detector)
    majority = [
        truths[0],  # ada fake, bo real, cy right: cy decides
        "fake" if truths[1] == "fake" else None,  # ada fake, cy right: a tie unless the truth is fake
        "real",  # ada real, bo real, cy fake
    ]
    assert board["class_correct"] == sum(m == t for m, t in zip(majority, truths, strict=True))
    ada_right = sum(t == v for t, v in zip(truths, ["fake", "fake", "real"], strict=True))
    scores = {p["nickname"]: p for p in board["players"]}
    assert scores["ada"]["correct"] == ada_right and scores["ada"]["voted"] == 3
    assert scores["bo"]["voted"] == 2 and scores["=cy"]["correct"] == 2 + (truths[2] == "fake")

    rows = list(csv.reader(io.StringIO(game.csv_text())))
    header, body, total = rows[0], rows[1:-1], rows[-1]
    assert header[:10] == [
        "round",
        "truth",
        "difficulty",
        "detector_score",
        "detector_verdict",
        "detector_correct",
        "votes_real",
        "votes_fake",
        "class_majority",
        "class_correct",
    ]
    assert header[10:] == ["ada vote", "ada correct", "bo vote", "bo correct", "'=cy vote", "'=cy correct"]
    assert [r[1] for r in body] == truths and all(r[2] == "medium" for r in body)
    assert body[0][3] == "0.9000" and body[2][3] == "" and body[2][4] == "none"
    assert [int(r[5]) for r in body] == [int(d) for d in detector]
    assert body[1][12:14] == ["", ""]  # bo did not vote in round 2
    real_right, fake_right = str(int(truths[2] == "real")), str(int(truths[2] == "fake"))
    assert body[2][10:] == ["real", real_right, "real", real_right, "fake", fake_right]
    assert total[0] == "total" and int(total[5]) == sum(detector) and int(total[11]) == ada_right
    assert "data:" not in game.csv_text() and len(game.csv_text()) < 2000  # no images


def test_codes_are_short_readable_and_unique(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = GameRegistry(max_games=200)
    codes = {registry.new_game("easy", 3).code for _ in range(150)}
    assert len(codes) == 150
    assert all(len(c) == CODE_LENGTH and set(c) <= set(CODE_ALPHABET) for c in codes)
    # A drawn code that is already in use is drawn again.
    taken = next(iter(codes))
    letters = iter(list(taken) + list("XYZ23"))
    monkeypatch.setattr("pipelines.classroom.secrets.choice", lambda _alphabet: next(letters))
    assert registry.new_game("easy", 3).code == "XYZ23"
    assert registry.get(" xyz 23 ").code == "XYZ23"  # codes are forgiving about case and spaces


def test_games_expire_and_can_be_ended() -> None:
    clock = Clock()
    registry = GameRegistry(clock=clock)
    old = registry.new_game("easy", 1)
    old.photos.append(FacePhoto("photo", np.zeros((4, 4, 3), np.uint8)))
    clock.now += GAME_TTL_S - 10
    done = registry.new_game("easy", 1)
    done.begin_round(item(done.next_truth(), 0.5))
    done.reveal(registry.now())  # the last round: the game is over
    ended = registry.new_game("easy", 1)
    assert len(registry) == 3
    clock.now += 20  # 2 h after the first game started
    with pytest.raises(InputError, match="no game"):
        registry.get(old.code)
    assert old.photos == [] and old.cache == {}  # its photos were dropped with it
    assert registry.get(done.code) is done
    clock.now += AFTER_GAME_S + 1  # 15 minutes after the last reveal
    with pytest.raises(InputError, match="no game"):
        registry.get(done.code)
    assert registry.end(ended.code) and not registry.end(ended.code)
    assert len(registry) == 0


def test_cues_and_cards_use_the_detectors_signal_names() -> None:
    from pipelines.spot.model import load_model

    names = set(load_model().names) - {"context_sharpness", "context_fine_vs_coarse"}  # context, not evidence
    measured = {s for card in CARDS for s in card.signals} - {"flicker", "watermark", "provenance"}
    assert measured == names  # every learned signal is on a card, and no card names a signal that does not exist
    fake = item("fake", 0.9, {"colour_mismatch": 1.2, "boundary_detail_step": 0.4, "detail_vs_edge": -0.5})
    assert [c.key for c in cues_for(fake)] == ["lighting", "edges", "eyes"]
    real = item("real", 0.1, {"detail_vs_edge": -0.9})
    assert cues_for(real)[0].key == "texture"


def test_missing_models_are_named() -> None:
    none = SimpleNamespace(analyzer=None, engines=list, spotter=None)
    assert all("face detector" in str(p) for p in difficulty_problems(none).values())
    classic_only = SimpleNamespace(analyzer=object(), engines=lambda: ["classic"], spotter=None)
    problems = difficulty_problems(classic_only)
    assert problems["easy"] is None
    assert "inswapper_128" in str(problems["medium"]) and "only Easy" in str(problems["hard"])


def test_hard_items_are_smaller_and_recompressed() -> None:
    image = np.random.default_rng(0).integers(0, 255, (100, 200, 3), dtype=np.uint8)
    out = degrade(image)
    assert out.shape == (60, 120, 3) and out.dtype == np.uint8


# -- a full game through the running app -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def classroom_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    with run_stand_in_app(tmp_path_factory.mktemp("classroom")) as running:
        yield running


def inline_image(value: Any) -> np.ndarray:
    """Game items come back as inline JPEG data URLs (never as a file on the server)."""
    url = value["url"] if isinstance(value, dict) else value
    assert value.get("path") is None and url.startswith("data:image/jpeg;base64,")
    data = np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8)
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
    assert decoded is not None
    return np.ascontiguousarray(decoded[:, :, ::-1])


def test_full_game_of_ten_rounds_with_three_players(classroom_app: RunningApp) -> None:
    from gradio_client import Client

    from pipelines.provenance import label_present, read_watermark
    from tests.model_builders.detector import face_at

    teacher = Client(classroom_app.url, verbose=False)
    code = teacher.predict("medium", 10, api_name="/class_new_game")
    assert len(code) == CODE_LENGTH
    phones = {name: Client(classroom_app.url, verbose=False) for name in ("ada", "bo", "cy")}
    ids = {name: phone.predict(code.lower(), name, api_name="/class_join") for name, phone in phones.items()}
    with pytest.raises(Exception, match="taken"):
        phones["bo"].predict(code, "Ada", api_name="/class_join")
    # The stand-in detector always finds its face at the same place: (320, 300) in its 640 px input.
    kps = face_at(320, 300, 220)[1] * (512 / 640)

    def strategy(name: str, number: int) -> str:  # ada: always fake; bo: always real; cy: alternates
        return {"ada": "fake", "bo": "real"}.get(name, "fake" if number % 2 else "real")

    reveals = []
    for number in range(1, 11):
        image, info = teacher.predict(code, api_name="/class_next_round")
        assert info == {"round": number, "difficulty": "medium"}
        shown = inline_image(image)
        assert shown.shape == (512, 512, 3)
        assert not label_present(shown)  # the visible label is hidden until the reveal...
        if number == 1:
            assert read_watermark(shown, [kps]).found  # ... but the invisible watermark is there
        for name, phone in phones.items():
            phone.predict(code, ids[name], strategy(name, number), api_name="/class_vote")
        with pytest.raises(Exception, match="one vote per round"):
            phones["ada"].predict(code, ids["ada"], "real", api_name="/class_vote")
        revealed, overlay, info = teacher.predict(code, api_name="/class_reveal")
        labelled = inline_image(revealed)
        assert label_present(labelled) == (info["truth"] == "fake")
        assert inline_image(overlay).shape == (512, 512, 3)  # the detector's heatmap
        assert info["explanations"] and info["cues"] and info["origin"]
        assert 0.0 <= info["detector_score"] <= 1.0
        assert info["detector_answer"] == ("fake" if info["detector_score"] >= 0.5 else "real")
        with pytest.raises(Exception, match="already been revealed"):
            phones["bo"].predict(code, ids["bo"], "fake", api_name="/class_vote")
        reveals.append(info)

    truths = [r["truth"] for r in reveals]
    assert set(truths) == {"real", "fake"}
    votes = {name: [strategy(name, n) for n in range(1, 11)] for name in phones}
    majority = ["fake" if sum(votes[p][i] == "fake" for p in votes) >= 2 else "real" for i in range(10)]
    class_right = [m == t for m, t in zip(majority, truths, strict=True)]
    detector_right = [r["detector_answer"] == r["truth"] for r in reveals]
    for info, right, det in zip(reveals, class_right, detector_right, strict=True):
        assert info["class_correct"] == right and info["detector_correct"] == det
    board = reveals[-1]["scoreboard"]
    assert board["finished"] and board["rounds_played"] == 10
    assert board["class_correct"] == sum(class_right) and board["detector_correct"] == sum(detector_right)
    per_player = {p["nickname"]: p["correct"] for p in board["players"]}
    assert per_player == {name: sum(v == t for v, t in zip(votes[name], truths, strict=True)) for name in phones}
    with pytest.raises(Exception, match="All rounds"):
        teacher.predict(code, api_name="/class_next_round")

    rows = list(csv.reader(io.StringIO(Path(teacher.predict(code, api_name="/class_csv")).read_text())))
    assert rows[0][10:] == ["ada vote", "ada correct", "bo vote", "bo correct", "cy vote", "cy correct"]
    body = rows[1:11]
    for index, (row, info) in enumerate(zip(body, reveals, strict=True)):
        assert row[:3] == [str(index + 1), info["truth"], "medium"]
        assert float(row[3]) == pytest.approx(info["detector_score"], abs=1e-4)
        assert row[4] == info["detector_answer"] and row[5] == str(int(detector_right[index]))
        assert row[8] == majority[index] and row[9] == str(int(class_right[index]))
        for column, name in zip((10, 12, 14), ("ada", "bo", "cy"), strict=True):
            assert row[column] == votes[name][index]
            assert row[column + 1] == str(int(votes[name][index] == info["truth"]))
    assert rows[11][0] == "total" and rows[11][9] == str(sum(class_right))
    assert rows[11][5] == str(sum(detector_right))

    assert teacher.predict(code, api_name="/class_end") is True
    with pytest.raises(Exception, match="no game"):
        teacher.predict(code, api_name="/class_scoreboard")


@pytest.mark.parametrize("difficulty", ["easy", "hard"])
def test_other_difficulties_make_playable_items(classroom_app: RunningApp, difficulty: str) -> None:
    from gradio_client import Client

    teacher = Client(classroom_app.url, verbose=False)
    code = teacher.predict(difficulty, 2, api_name="/class_new_game")
    player = teacher.predict(code, "solo", api_name="/class_join")
    side = 307 if difficulty == "hard" else 512  # hard: downscaled to 60 % and re-compressed
    truths = []
    for _ in range(2):
        image, _ = teacher.predict(code, api_name="/class_next_round")
        assert inline_image(image).shape == (side, side, 3)
        teacher.predict(code, player, "fake", api_name="/class_vote")
        _, _, info = teacher.predict(code, api_name="/class_reveal")
        assert info["difficulty"] == difficulty and info["detector_score"] is not None
        if info["truth"] == "fake":
            engine = "classic" if difficulty == "easy" else "inswapper"
            assert f"({engine} engine)" in info["origin"]
        truths.append(info["truth"])
    assert sorted(truths) == ["fake", "real"]  # games of 2+ rounds hold at least one of each
    assert info["scoreboard"]["players"][0]["correct"] == 1


def test_teacher_photos_need_consent(classroom_app: RunningApp) -> None:
    from gradio_client import Client, handle_file

    teacher = Client(classroom_app.url, verbose=False)
    code = teacher.predict("easy", 1, api_name="/class_new_game")
    photo = ROOT / "examples" / "cameraman.png"
    with pytest.raises(Exception, match="permission"):
        teacher.predict(code, handle_file(str(photo)), False, api_name="/class_add_photo")
    assert teacher.predict(code, handle_file(str(photo)), True, api_name="/class_add_photo") == 3  # 2 examples + 1
    assert teacher.predict(code, api_name="/class_end") is True
