"""The live-page trace summary (the recording itself needs a browser: see benchmarks/trace_live)."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.trace_live import count_events, js_profile, main_thread_tasks, report, thread_cores

RENDERER, MAIN, COMPOSITOR = 1, 10, 11


def event(name: str, start_ms: float, end_ms: float, cpu_ms: float | None = None, **data: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"ph": "X", "name": name, "pid": RENDERER, "tid": MAIN, "ts": start_ms * 1000}
    out["dur"] = (end_ms - start_ms) * 1000
    if cpu_ms is not None:
        out["tdur"] = cpu_ms * 1000
    if data:
        out["args"] = {"data": data}
    return out


def synthetic_trace() -> dict[str, Any]:
    meta = [
        {"ph": "M", "name": "process_name", "pid": RENDERER, "args": {"name": "Renderer"}},
        {"ph": "M", "name": "thread_name", "pid": RENDERER, "tid": MAIN, "args": {"name": "CrRendererMain"}},
        {"ph": "M", "name": "thread_name", "pid": RENDERER, "tid": COMPOSITOR, "args": {"name": "Compositor"}},
    ]
    main = [
        # A timer task (8 ms of CPU in 10 ms) with a nested call and two structured clones.
        event("RunTask", 0, 10, cpu_ms=8),
        event("TimerFire", 1, 9, timerId=5),
        event("v8.callFunction", 2, 8),
        event("SerializedScriptValueFactory::create", 3, 4),
        event("SerializedScriptValueFactory::create", 5, 6),
        # A page render task.
        event("RunTask", 20, 30),
        event("ProxyMain::BeginMainFrame", 21, 24),
        # Another timer of the same kind; and one of another timer.
        event("RunTask", 40, 44, cpu_ms=4),
        event("TimerFire", 40, 44, timerId=5),
        event("RunTask", 60, 61, cpu_ms=1),
        event("TimerFire", 60, 61, timerId=7),
    ]
    compositor = [{**event("RunTask", 0, 100, cpu_ms=20), "tid": COMPOSITOR}]
    nodes = [
        {"id": 1, "callFrame": {"functionName": "(root)"}},
        {"id": 2, "parent": 1, "callFrame": {"functionName": "dispatch", "url": "x/Blocks.js", "lineNumber": 2}},
        {"id": 3, "parent": 2, "callFrame": {"functionName": "structuredClone"}},
    ]
    chunk = {"cpuProfile": {"nodes": nodes, "samples": [3, 3, 2, 1]}}
    profile = {"name": "ProfileChunk", "id": "0x1", "args": {"data": chunk}}
    return {"traceEvents": [*meta, *main, *compositor, profile]}


def test_thread_cpu_counts_each_outer_task_once() -> None:
    cores = thread_cores(synthetic_trace())
    span_s = 0.1  # first event at 0 ms, last end at 100 ms
    assert cores["Renderer/CrRendererMain"] == pytest.approx((8 + 10 + 4 + 1) / 1000 / span_s)
    assert cores["Renderer/Compositor"] == pytest.approx(0.2)


def test_main_thread_tasks_are_named_by_what_runs_inside_them() -> None:
    tasks = main_thread_tasks(synthetic_trace())
    assert tasks["TimerFire (timer 5)"] == {"count": 2, "cpu_s": pytest.approx(0.012)}
    assert tasks["TimerFire (timer 7)"] == {"count": 1, "cpu_s": pytest.approx(0.001)}
    assert tasks["ProxyMain::BeginMainFrame"] == {"count": 1, "cpu_s": pytest.approx(0.010)}
    assert next(iter(tasks)) == "TimerFire (timer 5)"  # costliest first


def test_js_profile_own_and_inclusive_shares() -> None:
    own, total = js_profile(synthetic_trace())
    clone = "structuredClone :None:None"
    dispatch = next(name for name in total if name.startswith("dispatch"))
    assert own[clone] == pytest.approx(0.5) and own[dispatch] == pytest.approx(0.25)
    assert total[dispatch] == pytest.approx(0.75) and total[clone] == pytest.approx(0.5)
    assert next(iter(own)) == clone


def test_report_gives_clones_per_displayed_frame() -> None:
    trace = synthetic_trace()
    assert count_events(trace, "SerializedScriptValueFactory::create") == 2
    text = report(trace, fps=10.0)
    assert "Structured clones: 20/s, 2 per displayed frame" in text
    assert "TimerFire (timer 5)" in text
