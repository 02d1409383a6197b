"""Live benchmark from a real browser session: the same figures the page shows, measured in Chromium.

    python -m benchmarks.bench_live [--seconds 30] [--engines inswapper classic] [--repeat N] [--json]

Starts the app on a free loopback port with the real SCRFD detector from ../shared (or --detector), an
ArcFace-shaped test recognizer, and a RANDOM-WEIGHT swapper in the full inswapper topology (so a swap
costs what the real one costs) unless --swapper points at a real file. Chromium plays a fake camera of
a real face photo that moves; an in-page probe measures displayed frames per second and
capture-to-display latency (each camera frame carries its index in a brightness strip). Swaps per
second are read from the page's own live numbers.

This kind of shared virtual machine changes speed by a third within an hour, so `--repeat N` runs every
configuration N times, one after the other in turn (so a slow spell hits all of them alike), and prints the
median and range of each figure.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.suite import topology_swapper  # noqa: E402
from pipelines.image_io import load_image  # noqa: E402
from tests.app_server import RunningApp, run_app  # noqa: E402
from tests.browser_session import LivePage, browser_available, live_page, summarise, write_camera  # noqa: E402
from tests.model_builders.recognizer import build_fake_arcface  # noqa: E402

SHARED_DETECTOR = ROOT.parent / "shared" / "models" / "scrfd_2.5g_kps.onnx"
IDLE_CORES = 0.1


def page_numbers(text: str) -> dict[str, Any]:
    """Parse '14.8 fps displayed · 0.70 swaps/s · latency 45 ms · mode: decoupled' from #live-stats."""
    patterns = {
        "page_fps": r"([\d.]+) fps",
        "page_swaps_per_s": r"([\d.]+) swaps/s",
        "page_latency_ms": r"latency (\d+) ms",
    }
    out: dict[str, Any] = {}
    for key, pattern in patterns.items():
        match = re.search(pattern, text)
        if match:
            out[key] = float(match.group(1))
    mode = re.search(r"mode: (\w+)", text)
    if mode:
        out["mode"] = mode.group(1)
    return out


def machine_speed_ms(detector: Path) -> float:
    """A reference for how fast this machine is right now: SCRFD on one 640x480 frame (median ms, 2 threads).
    Shared or virtual machines vary; compare live figures only between runs with similar references."""
    from benchmarks.suite import median_ms, scene
    from pipelines.face_analysis import FaceAnalyzer

    analyzer = FaceAnalyzer.from_paths(detector)
    frame = scene(640, 480)
    return round(median_ms(lambda: analyzer.detect(frame), repeats=15), 1)


def cannot_run(detector: Path) -> str | None:
    """Why a live benchmark cannot run on this machine, or None."""
    if not browser_available():
        return "needs /usr/bin/chromium and playwright"
    if not detector.is_file():
        return f"detector not found: {detector}"
    return None


@contextmanager
def streaming_page(
    engine: str, precision: str, detector: Path, swapper: Path, workdir: Path
) -> Iterator[tuple[RunningApp, LivePage]]:
    """The app on `swapper` and the test recognizer, and a live page in Chromium streaming the moving-face
    camera to it (see the module's docstring)."""
    recognizer = build_fake_arcface(workdir / "rec.onnx")
    camera, _ = write_camera(load_image(ROOT / "examples" / "astronaut.png"), workdir / "camera.y4m")
    args = ["--no-download", "--detector", str(detector), "--recognizer", str(recognizer), "--swapper", str(swapper)]
    args += ["--engine", engine, "--precision", precision]
    env = {"SWAPSPOT_MODEL_DIR": str(workdir / "weights")}
    with (
        run_app(args, env, workdir / f"app-{engine}-{precision}.log") as app,
        live_page(app.url, camera, engine=engine) as page,
    ):
        yield app, page


def run(engine: str, seconds: float, detector: Path, swapper: Path, workdir: Path, precision: str) -> dict[str, Any]:
    reference = machine_speed_ms(detector)
    with streaming_page(engine, precision, detector, swapper, workdir) as (app, page):
        skip_s = min(5.0, seconds / 3)
        page.page.wait_for_timeout(int(skip_s * 1000))
        before = cpu_snapshot()
        page.page.wait_for_timeout(int((seconds - skip_s) * 1000))
        split = cpu_split(before, cpu_snapshot(), app.process.pid)
        figures = summarise(page.probe(), skip_s=skip_s)
        stats = page.text("live-stats")
        page.page.locator("#webcam button.capture-button").click()  # the user stops the stream
        stop = server_cpu_after_stop(app)
    return {
        "engine": engine,
        "precision": precision if engine == "inswapper" else None,
        "reference_detect_ms": reference,
        **figures,
        **page_numbers(stats),
        "page_text": stats.splitlines()[0],
        "cpu_cores": split,
        **stop,
    }


def cpu_snapshot() -> tuple[float, dict[int, tuple[str, float]], list[int]]:
    """(time, {pid: (command line, CPU seconds)}, the machine's /proc/stat CPU counters)."""
    import os
    import time

    tick = os.sysconf("SC_CLK_TCK")
    processes = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        processes[int(entry.name)] = (command, (int(fields[11]) + int(fields[12])) / tick)
    machine = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return time.monotonic(), processes, machine


def cpu_split(
    before: tuple[float, dict[int, tuple[str, float]], list[int]],
    after: tuple[float, dict[int, tuple[str, float]], list[int]],
    app_pid: int,
) -> dict[str, float]:
    """Cores used between two snapshots by the app, each kind of Chromium process, Playwright's driver,
    everything else, left idle, and stolen by the hypervisor: where the machine's two cores go during the run."""
    import re

    seconds = after[0] - before[0]
    groups: dict[str, float] = {}
    for pid, (command, cpu) in after[1].items():
        if pid not in before[1]:
            continue
        if pid == app_pid:
            group = "app"
        elif "playwright" in command and "driver" in command:
            group = "playwright"
        elif "chrom" in command:
            kind = re.search(r"--utility-sub-type=\S*?(\w+)\.mojom", command) or re.search(r"--type=(\S+)", command)
            group = f"chromium {kind.group(1) if kind else 'browser'}"
        else:
            group = "other"
        groups[group] = groups.get(group, 0.0) + (cpu - before[1][pid][1]) / seconds
    counters = [b - a for a, b in zip(before[2], after[2], strict=False)]
    groups["idle"] = (counters[3] + counters[4]) / max(sum(counters), 1) * (os_cpu_count())
    if len(counters) > 7:  # time the hypervisor gave this virtual machine's cores to someone else
        groups["steal"] = counters[7] / max(sum(counters), 1) * os_cpu_count()
    return {name: round(value, 3) for name, value in sorted(groups.items(), key=lambda kv: -kv[1])}


def os_cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def server_cpu_after_stop(app: Any, step_s: float = 0.25, span_s: float = 3.0) -> dict[str, Any]:
    """The server's CPU use (cores) in short windows after the stream was stopped, and from when on it stayed
    idle on average (under 0.1 core: an idle Gradio server's event loop alone uses 0.04-0.06)."""
    import time

    shares: list[float] = []
    started = time.monotonic()
    last_cpu, last_t = app.cpu_seconds(), started
    while time.monotonic() - started < span_s:
        time.sleep(step_s)
        cpu, now = app.cpu_seconds(), time.monotonic()
        shares.append(round((cpu - last_cpu) / (now - last_t), 2))
        last_cpu, last_t = cpu, now
    idle_at = next(
        (i * step_s for i in range(len(shares)) if shares[i] < IDLE_CORES and np.mean(shares[i:]) < IDLE_CORES),
        None,
    )
    return {"server_cores_after_stop": shares, "server_idle_after_stop_s": idle_at}


def label(row: dict[str, Any]) -> str:
    return f"{row['engine']} {row['precision']}" if row["precision"] else str(row["engine"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--engines", nargs="+", default=["inswapper", "classic"])
    parser.add_argument("--detector", type=Path, default=SHARED_DETECTOR)
    parser.add_argument("--swapper", type=Path, default=None, help="default: random-weight inswapper topology")
    parser.add_argument("--precision", nargs="+", default=["fp32", "int8"], help="swapper precisions to run")
    parser.add_argument("--repeat", type=int, default=1, help="runs per configuration, taken in turn")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    problem = cannot_run(args.detector)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    swapper = args.swapper or topology_swapper()
    if "inswapper" in args.engines and "fp32" in args.precision:
        # What the app runs for fp32 on a CPU, prepared before the clock starts (as a second start would find it).
        from pipelines.loading import example_photos, fp32_swapper_for

        print(fp32_swapper_for(swapper, build=True, photos=example_photos())[1], file=sys.stderr)
    configurations = [
        (engine, precision)
        for engine in args.engines
        for precision in (args.precision if engine == "inswapper" else ["fp32"])
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(max(args.repeat, 1)):
            for engine, precision in configurations:
                rows.append(run(engine, args.seconds, args.detector, swapper, Path(tmp), precision))
    note = "random-weight inswapper topology (fp32)" if args.swapper is None else str(args.swapper)
    summary = summarise_repeats(rows) if args.repeat > 1 else []
    if args.json:
        print(json.dumps({"swapper": note, "results": rows, "medians": summary}, indent=2))
        return 0
    print(f"Live benchmark, {args.seconds:.0f} s per engine, swapper: {note}, detector: {args.detector.name}")
    header = f"{'engine':<16} {'display fps':>11} {'latency p50':>12} {'latency p90':>12} {'swaps/s':>8}  mode"
    print(f"{header}  server idle after stop  (machine reference: SCRFD 640x480 in ms)")
    for r in rows:
        idle = r.get("server_idle_after_stop_s")
        print(
            f"{label(r):<16} {r['display_fps']:>11.1f} {r['latency_median_ms']:>10.0f}ms "
            f"{r['latency_p90_ms']:>10.0f}ms {r.get('page_swaps_per_s', float('nan')):>8.2f}  {r.get('mode', '?')}"
            f"  {'not within 3 s' if idle is None else f'{idle:.2f} s':>22}  ({r['reference_detect_ms']:.0f} ms)"
        )
        cores = ", ".join(f"{name} {value:.2f}" for name, value in r["cpu_cores"].items() if value >= 0.005)
        print(f"{'':<16} CPU in cores: {cores}")
    if summary:
        print(f"\nOver {args.repeat} runs each, taken in turn: median (range)")
        for item in summary:
            figures = ", ".join(
                f"{key} {value['median']:.2f} ({value['min']:.2f}-{value['max']:.2f})"
                for key, value in item["figures"].items()
            )
            print(f"{item['configuration']:<16} {figures}")
    return 0


REPEATED_FIGURES = ("display_fps", "page_swaps_per_s", "latency_median_ms", "reference_detect_ms")


def summarise_repeats(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median, min and max of the main figures per configuration (engine and precision)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(label(row), []).append(row)
    summary = []
    for name, group in groups.items():
        figures = {}
        for key in REPEATED_FIGURES:
            values = [float(row[key]) for row in group if row.get(key) is not None]
            if values:
                figures[key] = {"median": float(np.median(values)), "min": min(values), "max": max(values)}
        summary.append({"configuration": name, "runs": len(group), "figures": figures})
    return summary


if __name__ == "__main__":
    sys.exit(main())
