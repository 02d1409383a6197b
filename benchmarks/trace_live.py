"""Where the live page's own CPU goes in the browser: a Chrome trace of the live page, summarised.

    python -m benchmarks.trace_live [--seconds 8] [--engine inswapper] [--save trace.json]

Starts the app and the live page as `bench_live` does (real SCRFD detector, random-weight inswapper
topology, Chromium's fake camera), waits for the stream to settle, then records a Chrome trace with V8's
sampling profiler for a few seconds and prints:
1. CPU per browser thread (cores; the renderer's main thread is the page's JavaScript, style, layout, paint);
2. the main thread's top-level tasks by kind (timers, page renders, ...), per second and per displayed frame;
3. the JavaScript functions that take the most samples (own time, and time including what they call);
4. structured clones per displayed frame (Svelte's state snapshots in Gradio's page copy every prop this way).

This is how the page's per-frame costs in README's Speed section were found; the trace itself (`--save`)
opens in chrome://tracing or Perfetto.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CATEGORIES = [
    "devtools.timeline",
    "disabled-by-default-devtools.timeline",
    "v8",
    "blink",
    "cc",
    "toplevel",
    "disabled-by-default-v8.cpu_profiler",
]
WRAPPERS = {"RunTask", "ThreadControllerImpl::RunTask", "AsyncTask Run", "v8.callFunction", "TimerBase::run"}


def complete_events(trace: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in trace["traceEvents"] if e.get("ph") == "X" and "dur" in e]


def thread_names(trace: dict[str, Any]) -> dict[tuple[int, int], str]:
    processes = {e["pid"]: e["args"]["name"] for e in trace["traceEvents"] if e.get("name") == "process_name"}
    return {
        (e["pid"], e["tid"]): f"{processes.get(e['pid'], e['pid'])}/{e['args']['name']}"
        for e in trace["traceEvents"]
        if e.get("ph") == "M" and e.get("name") == "thread_name"
    }


def span_seconds(events: list[dict[str, Any]]) -> float:
    return (max(e["ts"] + e["dur"] for e in events) - min(e["ts"] for e in events)) / 1e6 if events else 0.0


def thread_cores(trace: dict[str, Any]) -> dict[str, float]:
    """CPU of each thread in cores: the thread time (`tdur`, else wall time) of its outermost events."""
    events = complete_events(trace)
    span = span_seconds(events) or 1.0
    names = thread_names(trace)
    busy: collections.Counter[str] = collections.Counter()
    ends: dict[tuple[int, int], float] = {}
    for event in sorted(events, key=lambda e: (e["pid"], e["tid"], e["ts"], -e["dur"])):
        key = (event["pid"], event["tid"])
        if event["ts"] < ends.get(key, -1.0):
            continue  # nested inside an outer event already counted
        ends[key] = event["ts"] + event["dur"]
        busy[names.get(key, str(key))] += event.get("tdur", event["dur"]) / 1e6
    return {name: round(seconds / span, 3) for name, seconds in sorted(busy.items(), key=lambda kv: -kv[1])}


def task_kind(event: dict[str, Any]) -> str:
    name = str(event["name"])
    data = event.get("args", {}).get("data")
    if name == "TimerFire" and isinstance(data, dict):
        return f"TimerFire (timer {data.get('timerId')})"
    if name == "FunctionCall" and isinstance(data, dict):
        return f"FunctionCall {str(data.get('url', ''))[-30:]}:{data.get('lineNumber')}:{data.get('columnNumber')}"
    return name


def main_thread_tasks(trace: dict[str, Any], thread: str = "CrRendererMain") -> dict[str, dict[str, float]]:
    """The main thread's top-level tasks, named by the first event inside them that is not a wrapper:
    {kind: {"count": n, "cpu_s": seconds}}."""
    names = thread_names(trace)
    keys = {key for key, name in names.items() if name.endswith("/" + thread)}
    events = sorted(
        (e for e in complete_events(trace) if (e["pid"], e["tid"]) in keys), key=lambda e: (e["ts"], -e["dur"])
    )
    tasks: dict[str, dict[str, float]] = {}
    top_end, top_cpu, kind = -1.0, 0.0, None

    def close() -> None:
        if top_end >= 0:
            entry = tasks.setdefault(kind or "RunTask", {"count": 0, "cpu_s": 0.0})
            entry["count"] += 1
            entry["cpu_s"] += top_cpu

    for event in events:
        if event["ts"] >= top_end:
            close()
            top_end, top_cpu, kind = event["ts"] + event["dur"], event.get("tdur", event["dur"]) / 1e6, None
            continue
        if kind is None and event["name"] not in WRAPPERS:
            kind = task_kind(event)
    close()
    return dict(sorted(tasks.items(), key=lambda kv: -kv[1]["cpu_s"]))


def count_events(trace: dict[str, Any], name: str) -> int:
    return sum(1 for e in complete_events(trace) if e["name"] == name)


def js_profile(trace: dict[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    """Share of V8's samples per JavaScript function: (own time, time including callees), best first."""
    nodes: dict[tuple[Any, int], dict[str, Any]] = {}
    samples: list[tuple[Any, int]] = []
    for event in trace["traceEvents"]:
        if event.get("name") != "ProfileChunk":
            continue
        profile = event["args"]["data"].get("cpuProfile", {})
        for node in profile.get("nodes", []):
            nodes[(event["id"], node["id"])] = node
        samples += [(event["id"], sample) for sample in profile.get("samples", [])]

    def label(key: tuple[Any, int]) -> str:
        frame = nodes[key]["callFrame"]
        where = str(frame.get("url", ""))[-28:]
        name = frame.get("functionName") or "(anonymous)"
        return f"{name} {where}:{frame.get('lineNumber')}:{frame.get('columnNumber')}"

    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    for sample in samples:
        if sample not in nodes:
            continue
        own[label(sample)] += 1
        seen, key = set(), sample
        while key in nodes:
            name = label(key)
            if name not in seen:
                total[name] += 1
                seen.add(name)
            parent = nodes[key].get("parent")
            if parent is None:
                break
            key = (key[0], parent)
    count = max(len(samples), 1)
    return (
        {name: n / count for name, n in own.most_common()},
        {name: n / count for name, n in total.most_common()},
    )


def record(seconds: float, engine: str, detector: Path, save: Path) -> dict[str, Any]:
    """Record the trace of a running live page; returns it with the page's displayed frames per second."""
    from benchmarks.bench_live import streaming_page
    from benchmarks.suite import topology_swapper

    with (
        tempfile.TemporaryDirectory() as tmp,
        streaming_page(engine, "int8", detector, topology_swapper(), Path(tmp)) as (_, page),
    ):
        page.page.wait_for_timeout(12_000)
        browser = page.page.context.browser
        started = page.page.evaluate("() => performance.now()")
        browser.start_tracing(page=page.page, path=str(save), categories=CATEGORIES)
        page.page.wait_for_timeout(int(seconds * 1000))
        ended = page.page.evaluate("() => performance.now()")
        shown = [o for o in page.probe()["outputs"] if started <= o["t"] <= ended]
        browser.stop_tracing()  # writing the trace slows the page: frames after `ended` are not counted
    trace = json.loads(save.read_text())
    return {"trace": trace, "display_fps": len(shown) / ((ended - started) / 1000)}


def report(trace: dict[str, Any], fps: float) -> str:
    span = span_seconds(complete_events(trace)) or 1.0
    lines = [f"Trace of {span:.1f} s, {fps:.1f} frames/s displayed", "", "CPU per browser thread (cores):"]
    lines += [f"  {cores:6.3f}  {name}" for name, cores in list(thread_cores(trace).items())[:10]]
    lines += ["", "Main thread's tasks: cores, per second, ms per displayed frame:"]
    for kind, entry in list(main_thread_tasks(trace).items())[:12]:
        per_frame = entry["cpu_s"] / span / fps * 1000 if fps else float("nan")
        lines.append(f"  {entry['cpu_s'] / span:6.3f} {entry['count'] / span:7.1f}/s {per_frame:6.2f} ms  {kind}")
    own, total = js_profile(trace)
    lines += ["", "JavaScript, share of samples (own | including callees):"]
    lines += [f"  {share * 100:5.1f}%  {name}" for name, share in list(own.items())[:12]]
    lines += ["  --"] + [f"  {share * 100:5.1f}%  {name}" for name, share in list(total.items())[:16]]
    clones = count_events(trace, "SerializedScriptValueFactory::create")
    per_frame = clones / span / fps if fps else 0.0
    lines += ["", f"Structured clones: {clones / span:.0f}/s, {per_frame:.0f} per displayed frame"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from benchmarks.bench_live import SHARED_DETECTOR, cannot_run

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--engine", choices=["inswapper", "classic"], default="inswapper")
    parser.add_argument("--detector", type=Path, default=SHARED_DETECTOR)
    parser.add_argument("--save", type=Path, default=None, help="keep the trace (JSON) here")
    args = parser.parse_args(argv)
    problem = cannot_run(args.detector)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        save = args.save or Path(tmp) / "trace.json"
        recorded = record(args.seconds, args.engine, args.detector, save)
        print(report(recorded["trace"], recorded["display_fps"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
