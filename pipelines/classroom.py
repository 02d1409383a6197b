"""Spot the fake: a classroom game, without gradio.

A presenter starts a `Game` (a short join code, a difficulty, a number of rounds); players join with the code
and a nickname from their own devices. Each round shows one item, a real photo or a face swap; players vote
*real* or *fake*; the reveal shows the truth, the detector's score with its reasons and heatmap, and the cues
to look for. The class (majority vote, and each player's accuracy) plays against the detector.

Privacy: everything lives in the `Game` object, in memory; games sit in a `GameRegistry` that the page creates
and that deletes a game when it is ended, `AFTER_GAME_S` after its last reveal, or `GAME_TTL_S` after it was
started. Nothing is written to disk here (the CSV export is text; the UI decides where it goes) and the CSV
holds no images.

Module layout: 1. rules and scoring (`Game`, `GameRegistry`, CSV) - pure Python, no models;
2. items (`ItemMaker`): real photos and swaps at three difficulties, watermarked, scored by the detector.
"""

from __future__ import annotations

import csv
import io
import random
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

import cv2
import numpy as np

from pipelines.errors import InputError, ModelError
from pipelines.spot.explain import DETAIL_SIGNALS
from pipelines.spot.pseudofake import jpeg
from pipelines.spot.spotter import THRESHOLD
from pipelines.types import ImageRGB

Truth = Literal["real", "fake"]
Difficulty = Literal["easy", "medium", "hard"]
DIFFICULTIES: tuple[Difficulty, ...] = ("easy", "medium", "hard")
DIFFICULTY_TEXT: dict[Difficulty, str] = {
    "easy": "Easy: classic engine (warp and blend)",
    "medium": "Medium: neural engine (inswapper)",
    "hard": "Hard: neural engine, then downscaled and re-compressed (JPEG quality 50)",
}
ENGINE_FOR: dict[Difficulty, str] = {"easy": "classic", "medium": "inswapper", "hard": "inswapper"}

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: easy to read off a projector
CODE_LENGTH = 5
GAME_TTL_S = 2 * 60 * 60  # every game is deleted 2 hours after it started, whatever happens
AFTER_GAME_S = 15 * 60  # ... and 15 minutes after its last reveal (time to export the CSV)
MAX_GAMES = 50
MAX_PLAYERS = 60
MAX_ROUNDS = 30
MAX_PHOTOS = 24
NICKNAME_MAX = 20


# ---------------------------------------------------------------------------------------------------------
# 1. Rules and scoring
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Item:
    """What one round shows, and what the reveal tells."""

    truth: Truth
    difficulty: Difficulty
    origin: str  # in words, for the reveal and the CSV (no file names of uploads)
    shown: ImageRGB  # as shown while voting: watermarked, no visible label
    revealed: ImageRGB  # as shown at the reveal: fakes carry the visible label
    score: float | None = None  # detector score of `shown` (None: no detector or no face found)
    explanations: tuple[str, ...] = ()
    contributions: dict[str, float] = field(default_factory=dict)
    overlay: ImageRGB | None = None  # heatmap over `shown`
    watermark: str = ""

    @property
    def detector_answer(self) -> Truth | None:
        if self.score is None:
            return None
        return "fake" if self.score >= THRESHOLD else "real"


@dataclass(frozen=True)
class Player:
    id: str
    nickname: str
    joined_round: int  # rounds before this one were already started when they joined


@dataclass
class Round:
    number: int  # 1-based
    item: Item
    votes: dict[str, Truth] = field(default_factory=dict)  # player id -> vote
    revealed: bool = False


@dataclass(frozen=True)
class RoundResult:
    number: int
    truth: Truth
    difficulty: Difficulty
    votes_real: int
    votes_fake: int
    class_answer: Truth | None  # the majority; None on a tie or with no votes
    class_correct: bool
    class_accuracy: float | None  # share of voters who were right (None: nobody voted)
    detector_score: float | None
    detector_answer: Truth | None
    detector_correct: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "round": self.number,
            "truth": self.truth,
            "difficulty": self.difficulty,
            "votes": {"real": self.votes_real, "fake": self.votes_fake},
            "class_answer": self.class_answer,
            "class_correct": self.class_correct,
            "class_accuracy": None if self.class_accuracy is None else round(self.class_accuracy, 4),
            "detector_score": None if self.detector_score is None else round(self.detector_score, 4),
            "detector_answer": self.detector_answer,
            "detector_correct": self.detector_correct,
        }


def round_result(played: Round) -> RoundResult:
    item = played.item
    real = sum(1 for v in played.votes.values() if v == "real")
    fake = len(played.votes) - real
    answer: Truth | None = "real" if real > fake else "fake" if fake > real else None
    accuracy = (real if item.truth == "real" else fake) / len(played.votes) if played.votes else None
    detector = item.detector_answer
    return RoundResult(
        played.number,
        item.truth,
        item.difficulty,
        real,
        fake,
        answer,
        answer == item.truth,
        accuracy,
        item.score,
        detector,
        detector == item.truth,
    )


def check_vote(vote: str) -> Truth:
    cleaned = str(vote).strip().lower()
    if cleaned not in ("real", "fake"):
        raise InputError("A vote is either 'real' or 'fake'.")
    return cast(Truth, cleaned)


def clean_nickname(nickname: str) -> str:
    name = " ".join(str(nickname or "").split())
    name = "".join(ch for ch in name if ch.isprintable())
    if not name:
        raise InputError("Choose a nickname (no real names needed).")
    if len(name) > NICKNAME_MAX:
        raise InputError(f"Nicknames can be at most {NICKNAME_MAX} characters long.")
    return name


def csv_safe(text: str) -> str:
    """No spreadsheet formulas from nicknames ('=...', '+...', '-...', '@...')."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


class Game:
    """One game: its players, rounds, votes and scores. Thread-safe (every method takes the game's lock)."""

    def __init__(
        self,
        code: str,
        difficulty: Difficulty,
        rounds: int,
        created: float,
        rng: random.Random | None = None,
    ) -> None:
        if difficulty not in DIFFICULTIES:
            raise InputError(f"Unknown difficulty '{difficulty}' (choose easy, medium or hard).")
        if not 1 <= int(rounds) <= MAX_ROUNDS:
            raise InputError(f"A game has 1 to {MAX_ROUNDS} rounds.")
        self.code = code
        self.difficulty: Difficulty = difficulty
        self.total_rounds = int(rounds)
        self.created = created
        self.finished_at: float | None = None
        self.rng = rng or random.Random(secrets.randbits(64))
        self.players: dict[str, Player] = {}
        self.rounds: list[Round] = []
        self.photos: list[FacePhoto] = []  # the item pool (examples and the teacher's photos), in memory
        self.cache: dict[Any, Any] = {}  # per-game model results (source identities), dropped with the game
        self.lock = threading.RLock()
        self.preparing = threading.Lock()  # one next-round at a time (item making is slow; votes need not wait)
        self.plan = self._plan_truths()

    def _plan_truths(self) -> list[Truth]:
        """Real or fake for each round: about half each, at least one of each in games of 2+ rounds."""
        while True:
            plan: list[Truth] = [self.rng.choice(("real", "fake")) for _ in range(self.total_rounds)]
            if self.total_rounds < 2 or len(set(plan)) == 2:
                return plan

    # -- players and rounds --

    def join(self, nickname: str) -> Player:
        name = clean_nickname(nickname)
        with self.lock:
            if self.finished_at is not None:
                raise InputError("This game is over; ask for the code of a new one.")
            if any(p.nickname.casefold() == name.casefold() for p in self.players.values()):
                raise InputError(f"The nickname '{name}' is taken in this game; choose another.")
            if len(self.players) >= MAX_PLAYERS:
                raise InputError(f"This game is full ({MAX_PLAYERS} players).")
            player = Player(secrets.token_urlsafe(8), name, len(self.rounds))
            self.players[player.id] = player
            return player

    def player(self, player_id: str) -> Player:
        with self.lock:
            found = self.players.get(str(player_id or ""))
        if found is None:
            raise InputError("You are not in this game: join again with the code and a nickname.")
        return found

    @property
    def current(self) -> Round | None:
        with self.lock:
            return self.rounds[-1] if self.rounds else None

    def next_truth(self) -> Truth:
        """The truth of the round that `begin_round` will start next (checks that one may start)."""
        with self.lock:
            if self.finished_at is not None or len(self.rounds) >= self.total_rounds:
                raise InputError("All rounds have been played: export the results or start a new game.")
            if self.rounds and not self.rounds[-1].revealed:
                raise InputError("Reveal the current round before starting the next one.")
            return self.plan[len(self.rounds)]

    def begin_round(self, item: Item) -> Round:
        with self.lock:
            truth = self.next_truth()
            if item.truth != truth:
                raise ValueError("the item does not match the round's planned truth")
            played = Round(len(self.rounds) + 1, item)
            self.rounds.append(played)
            return played

    def vote(self, player_id: str, vote: str) -> Round:
        choice = check_vote(vote)
        with self.lock:
            player = self.player(player_id)
            played = self.current
            if played is None:
                raise InputError("The first round has not started yet: wait for the presenter.")
            if played.revealed:
                raise InputError(f"Round {played.number} has already been revealed: no more votes.")
            if player.id in played.votes:
                raise InputError(f"You already voted in round {played.number}: one vote per round.")
            played.votes[player.id] = choice
            return played

    def reveal(self, now: float) -> RoundResult:
        with self.lock:
            played = self.current
            if played is None:
                raise InputError("Start a round first.")
            played.revealed = True  # revealing twice shows the same result again
            if len(self.rounds) == self.total_rounds and self.finished_at is None:
                self.finished_at = now
            return round_result(played)

    # -- scores --

    def results(self) -> list[RoundResult]:
        with self.lock:
            return [round_result(r) for r in self.rounds if r.revealed]

    def player_scores(self) -> list[dict[str, Any]]:
        """Per player: right answers, votes cast, accuracy over their votes; best first."""
        with self.lock:
            revealed = [r for r in self.rounds if r.revealed]
            rows = []
            for player in self.players.values():
                votes = [(r.votes[player.id], r.item.truth) for r in revealed if player.id in r.votes]
                right = sum(1 for vote, truth in votes if vote == truth)
                rows.append(
                    {
                        "nickname": player.nickname,
                        "correct": right,
                        "voted": len(votes),
                        "accuracy": round(right / len(votes), 4) if votes else None,
                    }
                )
        return sorted(rows, key=lambda row: (-row["correct"], row["nickname"].casefold()))

    def scoreboard(self) -> dict[str, Any]:
        """The running score: the class (majority vote, and mean accuracy of the voters) against the detector."""
        results = self.results()
        accuracies = [r.class_accuracy for r in results if r.class_accuracy is not None]
        return {
            "code": self.code,
            "difficulty": self.difficulty,
            "rounds_played": len(results),
            "rounds_total": self.total_rounds,
            "class_correct": sum(r.class_correct for r in results),
            "detector_correct": sum(r.detector_correct for r in results),
            "class_mean_accuracy": round(sum(accuracies) / len(accuracies), 4) if accuracies else None,
            "players": self.player_scores(),
            "rounds": [r.to_json() for r in results],
            "finished": self.finished_at is not None,
        }

    def status(self, player_id: str | None = None) -> dict[str, Any]:
        """What a player's screen (or the presenter's) needs to refresh itself."""
        with self.lock:
            played = self.current
            state: dict[str, Any] = {
                "code": self.code,
                "players": len(self.players),
                "round": played.number if played else 0,
                "rounds_total": self.total_rounds,
                "phase": "waiting" if played is None else "revealed" if played.revealed else "voting",
                "votes": len(played.votes) if played else 0,
                "finished": self.finished_at is not None,
            }
            if player_id and player_id in self.players and played is not None:
                mine = played.votes.get(player_id)
                state["my_vote"] = mine
                if played.revealed:
                    state["truth"] = played.item.truth
                    state["i_was_right"] = None if mine is None else mine == played.item.truth
        return state

    def csv_text(self) -> str:
        """One row per revealed round: truth, difficulty, detector, each player's vote and correctness.

        Columns: round, truth, difficulty, detector_score, detector_verdict, detector_correct, votes_real,
        votes_fake, class_majority, class_correct, then `<nickname> vote` and `<nickname> correct` per player
        (in joining order). No images, no file names; a last row `total` sums the correct answers.
        """
        with self.lock:
            players = list(self.players.values())
            revealed = [r for r in self.rounds if r.revealed]
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            header = [
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
            for player in players:
                header += [csv_safe(f"{player.nickname} vote"), csv_safe(f"{player.nickname} correct")]
            writer.writerow(header)
            totals = {p.id: 0 for p in players}
            for played in revealed:
                result = round_result(played)
                row: list[Any] = [
                    result.number,
                    result.truth,
                    result.difficulty,
                    "" if result.detector_score is None else f"{result.detector_score:.4f}",
                    result.detector_answer or "none",
                    int(result.detector_correct),
                    result.votes_real,
                    result.votes_fake,
                    result.class_answer or "tie",
                    int(result.class_correct),
                ]
                for player in players:
                    vote = played.votes.get(player.id)
                    right = vote == played.item.truth
                    totals[player.id] += int(right)
                    row += [vote or "", "" if vote is None else int(right)]
                writer.writerow(row)
            results = [round_result(r) for r in revealed]
            total: list[Any] = ["total", "", "", "", "", sum(r.detector_correct for r in results), "", "", ""]
            total.append(sum(r.class_correct for r in results))
            for player in players:
                total += ["", totals[player.id]]
            writer.writerow(total)
        return buffer.getvalue()


def normalise_code(code: str) -> str:
    return "".join(str(code or "").split()).upper()


class GameRegistry:
    """The games of one running page, by join code. Thread-safe; drops expired games on every access."""

    def __init__(
        self,
        ttl_s: float = GAME_TTL_S,
        after_game_s: float = AFTER_GAME_S,
        max_games: int = MAX_GAMES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s, self.after_game_s, self.max_games = ttl_s, after_game_s, max_games
        self.clock = clock
        self._games: dict[str, Game] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            self._purge_locked()
            return len(self._games)

    def _expired(self, game: Game, now: float) -> bool:
        if now - game.created > self.ttl_s:
            return True
        return game.finished_at is not None and now - game.finished_at > self.after_game_s

    def _purge_locked(self) -> int:
        now = self.clock()
        gone = [code for code, game in self._games.items() if self._expired(game, now)]
        for code in gone:
            self._drop_locked(code)
        return len(gone)

    def _drop_locked(self, code: str) -> None:
        game = self._games.pop(code, None)
        if game is not None:
            with game.lock:  # free the photos and model results at once
                game.photos.clear()
                game.cache.clear()

    def purge(self) -> int:
        with self._lock:
            return self._purge_locked()

    def new_game(self, difficulty: Difficulty, rounds: int, rng: random.Random | None = None) -> Game:
        with self._lock:
            self._purge_locked()
            if len(self._games) >= self.max_games:
                raise InputError("Too many games are running on this app; end one first (or wait).")
            while True:
                code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
                if code not in self._games:
                    break
            game = Game(code, difficulty, rounds, self.clock(), rng)
            self._games[code] = game
            return game

    def get(self, code: str) -> Game:
        key = normalise_code(code)
        with self._lock:
            self._purge_locked()
            game = self._games.get(key)
        if game is None:
            raise InputError(f"There is no game with the code '{key}' (check the code; games end after 2 hours).")
        return game

    def end(self, code: str) -> bool:
        """Delete a game now (photos, votes, everything)."""
        with self._lock:
            found = normalise_code(code) in self._games
            self._drop_locked(normalise_code(code))
            return found

    def now(self) -> float:
        return self.clock()


# ---------------------------------------------------------------------------------------------------------
# 2. Items: real photos and swaps, watermarked and scored
# ---------------------------------------------------------------------------------------------------------

ITEM_SIDE = 512  # items are resized so that their longer side is this many pixels
HARD_SCALE = 0.6  # hard: downscaled to 60 % ...
HARD_JPEG_QUALITY = 50  # ... then re-compressed at JPEG quality 50


@dataclass(frozen=True, eq=False)
class FacePhoto:
    """A face photo in the game's pool (held in memory by the game, never written anywhere)."""

    name: str  # "astronaut (example)", "teacher photo 2", "class snapshot 1"
    image: ImageRGB


def fit_side(image: ImageRGB, side: int = ITEM_SIDE) -> ImageRGB:
    height, width = image.shape[:2]
    scale = side / max(height, width)
    if abs(scale - 1.0) < 1e-3:
        return np.ascontiguousarray(image)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    size = (max(int(round(width * scale)), 1), max(int(round(height * scale)), 1))
    return np.ascontiguousarray(cv2.resize(image, size, interpolation=interpolation))


def degrade(image: ImageRGB, scale: float = HARD_SCALE, quality: int = HARD_JPEG_QUALITY) -> ImageRGB:
    """Hard difficulty: downscale, then JPEG re-compression (what a messaging app does to a photo)."""
    height, width = image.shape[:2]
    small = cv2.resize(image, (max(int(width * scale), 1), max(int(height * scale), 1)), interpolation=cv2.INTER_AREA)
    return jpeg(np.asarray(small, np.uint8), quality)


def difficulty_problems(services: Any) -> dict[Difficulty, str | None]:
    """Per difficulty: None when it can be played with the installed models, else what is missing."""
    if services.analyzer is None:
        missing = (
            "needs the face detector (buffalo_l det_10g.onnx), which is not installed: no item can be made. "
            "See the Models tab."
        )
        return dict.fromkeys(DIFFICULTIES, missing)
    problems: dict[Difficulty, str | None] = {"easy": None, "medium": None, "hard": None}
    if "inswapper" not in services.engines():
        neural = (
            "needs the neural swapper (inswapper_128.onnx) and the face recognizer (buffalo_l w600k_r50.onnx), "
            "which are not installed: only Easy (classic engine) can be played. See the Models tab."
        )
        problems["medium"] = problems["hard"] = neural
    return problems


def availability_markdown(services: Any) -> str:
    lines = []
    for difficulty, problem in difficulty_problems(services).items():
        mark = "✔" if problem is None else "✘"
        lines.append(f"- {mark} **{DIFFICULTY_TEXT[difficulty]}**" + ("" if problem is None else f" — {problem}"))
    if services.spotter is None:
        lines.append("- ✘ **The detector could not be loaded**: the reveal shows the truth, but no detector score.")
    return "\n".join(lines)


class ItemMaker:
    """Makes a game's items with the app's shared services (`pipelines.service.AppServices`)."""

    def __init__(self, services: Any) -> None:
        self.services = services

    def check(self, difficulty: Difficulty) -> None:
        problem = difficulty_problems(self.services).get(difficulty)
        if problem is not None:
            raise ModelError(f"{DIFFICULTY_TEXT[difficulty]} {problem}")

    def check_photo(self, image: ImageRGB, name: str) -> FacePhoto:
        """A teacher's photo for the pool: resized at once (the original is not kept); it must show a face."""
        fitted = fit_side(image)
        analyzer = self.services.require_analyzer()
        if not analyzer.detect(fitted):
            raise InputError(f"No face found in {name}; use a frontal, well-lit photo of a face.")
        return FacePhoto(name, fitted)

    def make(self, game: Game, truth: Truth) -> Item:
        """1. pick the photo (and for a fake, another face to swap in), 2. swap, 3. (hard) degrade,
        4. watermark every item's faces (real ones too, so the mark gives nothing away), 5. score."""
        from pipelines.outputs import mark_frame
        from pipelines.provenance import WatermarkPayload
        from pipelines.service import identity_from_image, score_image
        from pipelines.swapping import create_swap_job, swap_image
        from pipelines.types import SwapSettings

        self.check(game.difficulty)
        services, difficulty = self.services, game.difficulty
        analyzer = services.require_analyzer()
        with game.lock:
            pool = list(game.photos)
        if not pool:
            raise InputError("The game has no face photos: add example faces or upload photos first.")
        if truth == "fake" and len(pool) < 2:
            raise InputError("A swap needs at least two different face photos: add another photo.")
        target_index = game.rng.randrange(len(pool))
        target = pool[target_index]
        image, origin = fit_side(target.image), f"{target.name}, unchanged"
        if truth == "fake":
            source_index = game.rng.choice([i for i in range(len(pool)) if i != target_index])
            source = pool[source_index]
            engine_name = ENGINE_FOR[difficulty]
            key = ("identity", source_index)
            with game.lock:
                identity = game.cache.get(key)
            if identity is None:
                identity = identity_from_image(services, source.image, source.name)
                with game.lock:
                    game.cache[key] = identity
            engine = services.engine(engine_name)
            settings = SwapSettings(engine=cast(Any, engine_name), faces="largest")
            job = create_swap_job(analyzer, engine, [identity], settings=settings)
            swapped = swap_image(image, job)
            if not swapped.swapped:
                raise InputError(f"No face could be swapped in {target.name}; remove that photo from the game.")
            image = swapped.image
            origin = f"{target.name} with the face of {source.name} ({engine_name} engine)"
        if difficulty == "hard":
            image = degrade(image)
            origin += f", downscaled to {HARD_SCALE:.0%} and re-compressed (JPEG {HARD_JPEG_QUALITY})"
        faces = analyzer.detect(image)
        payload = WatermarkPayload.new()
        hidden = replace(services.policy, visible_label=False)
        shown = mark_frame(image, faces, payload, hidden)
        revealed = mark_frame(image, faces, payload, services.policy) if truth == "fake" else shown
        verdict, overlay = score_image(services, shown, faces) if faces else (None, None)
        top = verdict.faces[0] if verdict is not None and verdict.faces else None
        return Item(
            truth=truth,
            difficulty=difficulty,
            origin=origin,
            shown=shown,
            revealed=revealed,
            score=None if verdict is None else float(verdict.score),
            explanations=tuple(top.explanations) if top else (),
            contributions=dict(top.contributions) if top else {},
            overlay=overlay,
            watermark=payload.describe() if len(faces) else "",
        )


def example_pool(paths: Sequence[Any], load: Callable[[Any], ImageRGB]) -> list[FacePhoto]:
    return [FacePhoto(f"{path.stem} (example)", fit_side(load(path))) for path in paths]


# ---------------------------------------------------------------------------------------------------------
# Teaching cards: what to look for, and which detector signal measures it
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Card:
    key: str
    title: str
    look_for: str
    signals: tuple[str, ...]  # detector signal names (pipelines/spot/weights/MODEL_CARD.md); () = not measured
    measured: str  # how the detector covers it, in words


CARDS: tuple[Card, ...] = (
    Card(
        "edges",
        "Blending edges",
        "Look at the outline of the face and a square around it: a sudden change in sharpness, grain or a faint "
        "halo where a pasted face was blended in.",
        (
            "boundary_detail_step",
            "boundary_fine_step",
            "oval_detail_step",
            "oval_fine_step",
            "oval_noise_step",
            "learned_texture",
        ),
        "measured as steps in detail and grain across the blend seams",
    ),
    Card(
        "texture",
        "Skin texture",
        "Is the skin smoother or blurrier than the hair, ears and background? Swap tools paint faces at low "
        "resolution (128 x 128 px) and stretch them, so pores and fine hairs go missing.",
        DETAIL_SIGNALS,  # the heatmap's detail group: the same signals
        "measured as fine detail and camera grain of the face against its surroundings",
    ),
    Card(
        "lighting",
        "Lighting and colour",
        "Does the face's colour and light match the neck, ears and forehead? Is a shadow falling the wrong way?",
        ("colour_mismatch", "oval_colour_step", "boundary_colour_step", "boundary_light_step"),
        "measured as colour and brightness jumps between the face and the skin around it",
    ),
    Card(
        "eyes",
        "Eyes and teeth",
        "Reflections in the two eyes that do not match, odd gaze, blurry or merged teeth, a mouth that looks "
        "pasted on.",
        (),
        "not measured by this detector: this one is for your own eyes",
    ),
    Card(
        "flicker",
        "Flicker (video)",
        "In a clip: does the face's texture shimmer or jump from frame to frame while the background stays calm?",
        ("flicker",),
        "measured on clips and live video only (texture flicker over time), not on single photos",
    ),
    Card(
        "provenance",
        "Provenance",
        "Where does the picture come from? Content Credentials (C2PA) and invisible watermarks can say which tool "
        "made or edited it; a missing mark proves nothing.",
        ("watermark", "provenance"),
        "read by the Check tab (watermark and Content Credentials), separately from the score",
    ),
)


def cards_markdown() -> str:
    parts = []
    for card in CARDS:
        signals = ", ".join(f"`{name}`" for name in card.signals) if card.signals else "—"
        parts.append(
            f"**{card.title}** — {card.look_for}\n<small>Detector: {card.measured}. Signals: {signals}</small>"
        )
    return "\n\n".join(parts)


def cues_for(item: Item, limit: int = 3) -> list[Card]:
    """The cards to point at for this item: the photo cards whose signals pushed the score towards 'swapped'
    the most (for a real photo, the ones that held it back the most), then the eye check."""
    sign = 1.0 if item.truth == "fake" else -1.0
    scored = []
    for card in CARDS:
        if card.signals and card.key not in ("flicker", "provenance"):
            push = sum(max(sign * item.contributions.get(name, 0.0), 0.0) for name in card.signals)
            scored.append((push, card))
    scored.sort(key=lambda pair: -pair[0])
    chosen = [card for push, card in scored if push > 0][: limit - 1] or [scored[0][1], scored[1][1]][: limit - 1]
    return [*chosen, next(card for card in CARDS if card.key == "eyes")]


def reveal_json(game: Game, result: RoundResult, item: Item) -> dict[str, Any]:
    """Everything the reveal shows, as JSON (for the API and the page)."""
    return {
        **result.to_json(),
        "origin": item.origin,
        "explanations": list(item.explanations),
        "cues": [{"card": c.title, "look_for": c.look_for, "signals": list(c.signals)} for c in cues_for(item)],
        "watermark": item.watermark,
        "scoreboard": game.scoreboard(),
    }
