"""The background swap worker of one live viewer: swaps the newest aligned faces, never builds a backlog.

The display path submits the newest aligned 128 px crops and immediately goes on; the worker swaps them
when it is free and publishes the result. A new submission replaces one that is still waiting, so the
swap always works on the freshest face. The thread exits on `stop()` or after `idle_stop_s` seconds
without submissions (a stopped stream or a closed tab stops sending frames, so its worker ends by
itself). A swap still running then is cut short: a small watchdog thread sets onnxruntime's
`RunOptions.terminate`, so a 2-second CPU forward does not keep a core busy for nobody.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from pipelines.paste_back import transfer_colour_aligned
from pipelines.types import ImageRGB

ForwardFn = Callable[[ImageRGB, NDArray[np.float32], ort.RunOptions], ImageRGB]
"""(aligned crop, source latent, run options whose `terminate` may be set while it runs) -> swapped crop."""

WATCHDOG_PERIOD_S = 0.1

WORKER_NICENESS = 19
"""The swap thread yields the CPU to the display path (and the browser on the same machine): on 2 cores a
swap that competes on equal terms makes every displayed frame late. Its session runs on one thread (the
calling one), so this priority covers all of the swap's work."""


def lower_thread_priority(niceness: int) -> None:
    """Make the calling thread nicer (Linux: per-thread priority); elsewhere do nothing."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)


@dataclass(frozen=True)
class SwapJob:
    crops: tuple[ImageRGB, ...]  # aligned target faces, largest first
    latent: NDArray[np.float32]
    captured_at: float  # time.monotonic() when the frame holding these faces arrived
    generation: int  # bumps when the source changes, so stale results are dropped
    colour_correction: bool = False  # match each swapped face's colours to its target crop (done here, once)


@dataclass(frozen=True)
class SwapOutput:
    faces: tuple[ImageRGB, ...]  # swapped 128 px faces, in the job's order
    captured_at: float
    finished_at: float
    generation: int


class SwapWorker:
    """One per viewer. Thread-safe between the display path (submit/latest) and its own thread."""

    def __init__(
        self, forward: ForwardFn, idle_stop_s: float = 0.6, name: str = "swap-worker", shown: SwapOutput | None = None
    ) -> None:
        """`shown`: the result to offer as the latest until this worker's first swap (from a worker it replaces)."""
        self._forward = forward
        self._idle_stop_s = idle_stop_s
        self._name = name
        self._lock = threading.Condition()
        self._pending: SwapJob | None = None
        self._latest: SwapOutput | None = shown
        self._thread: threading.Thread | None = None
        self._watchdog: threading.Thread | None = None
        self._in_flight: ort.RunOptions | None = None  # the running forward's options (to terminate it)
        self._stop = False
        self._last_submit = 0.0
        self.swap_seconds: deque[float] = deque(maxlen=20)  # per-face forward times
        self.finished_at: deque[float] = deque(maxlen=20)  # completion times, for swaps per second

    # -- display side ---------------------------------------------------------------------------------
    def submit(self, job: SwapJob) -> None:
        """Replace any waiting job with this one and make sure the thread runs."""
        with self._lock:
            self._pending = job
            self._last_submit = time.monotonic()
            self._stop = False
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
                self._watchdog = threading.Thread(target=self._watch, name=f"{self._name}-watchdog", daemon=True)
                self._watchdog.start()
            self._lock.notify()

    def latest(self) -> SwapOutput | None:
        with self._lock:
            return self._latest

    def busy(self) -> bool:
        with self._lock:
            return self._pending is not None

    def running(self) -> bool:
        """True while the worker or its watchdog thread is alive."""
        return any(thread is not None and thread.is_alive() for thread in (self._thread, self._watchdog))

    def forget(self) -> None:
        """Drop waiting and finished results (the source changed)."""
        with self._lock:
            self._pending = None
            self._latest = None

    def stop(self, wait_s: float = 2.0) -> None:
        """Stop now: drop the waiting job, cut the running swap short, and wait for the threads to end."""
        with self._lock:
            self._stop = True
            self._pending = None
            if self._in_flight is not None:
                self._in_flight.terminate = True
            self._lock.notify_all()
        for thread in (self._thread, self._watchdog):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=wait_s)

    def swaps_per_second(self, now: float | None = None, window_s: float = 15.0) -> float:
        """Finished swaps per second over the last `window_s` seconds: from the spacing of the swaps (a
        plain count per window would only ever read 0.2, 0.4, ... for slow CPU swaps)."""
        now = time.monotonic() if now is None else now
        recent = [t for t in list(self.finished_at) if now - t <= window_s]
        if len(recent) >= 2 and recent[-1] > recent[0]:
            return (len(recent) - 1) / (recent[-1] - recent[0])
        return len(recent) / window_s

    def median_swap_seconds(self) -> float | None:
        values = sorted(self.swap_seconds)
        return values[len(values) // 2] if values else None

    # -- worker side ----------------------------------------------------------------------------------
    def _take(self) -> SwapJob | None:
        with self._lock:
            while self._pending is None and not self._stop:
                if time.monotonic() - self._last_submit > self._idle_stop_s:
                    return None
                self._lock.wait(timeout=0.1)
            if self._stop:
                return None
            job, self._pending = self._pending, None
            return job

    def _run(self) -> None:
        lower_thread_priority(WORKER_NICENESS)
        while (job := self._take()) is not None:
            faces = []
            for crop in job.crops:
                options = ort.RunOptions()
                with self._lock:
                    if self._stop or self._idle():
                        return
                    self._in_flight = options
                started = time.monotonic()
                try:
                    fake = self._forward(crop, job.latent, options)
                except Exception as error:  # terminated (stop/idle), or a broken model: end this worker
                    if not options.terminate:
                        print(f"swap worker stopped: {type(error).__name__}: {error}", flush=True)
                    return
                finally:
                    with self._lock:
                        self._in_flight = None
                self.swap_seconds.append(time.monotonic() - started)
                # Once per swap here, instead of on every displayed frame in the display path.
                faces.append(transfer_colour_aligned(fake, crop) if job.colour_correction else fake)
            finished = time.monotonic()
            with self._lock:
                self._latest = SwapOutput(tuple(faces), job.captured_at, finished, job.generation)
                self.finished_at.append(finished)

    def _idle(self) -> bool:
        return time.monotonic() - self._last_submit > self._idle_stop_s

    def _watch(self) -> None:
        """While the worker lives: cut its running swap short once frames have stopped coming."""
        while True:
            thread = self._thread
            if thread is None or not thread.is_alive():
                return
            with self._lock:
                if self._in_flight is not None and (self._stop or self._idle()):
                    self._in_flight.terminate = True
            time.sleep(WATCHDOG_PERIOD_S)
