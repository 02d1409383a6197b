"""The live benchmark's summary of repeated runs (the runs themselves need a browser: see bench_live)."""

from __future__ import annotations

import pytest

from benchmarks import bench_live
from benchmarks.bench_live import summarise_repeats


def test_repeated_runs_are_summarised_per_configuration() -> None:
    def row(engine: str, precision: str | None, fps: float, swaps: float | None) -> dict[str, object]:
        return {
            "engine": engine,
            "precision": precision,
            "display_fps": fps,
            "page_swaps_per_s": swaps,
            "latency_median_ms": 100.0,
            "reference_detect_ms": 50.0,
        }

    rows = [
        row("inswapper", "int8", 15.0, 0.9),
        row("classic", None, 18.0, 18.0),
        row("inswapper", "int8", 13.0, 0.7),
        row("classic", None, 17.0, None),  # the page's numbers could not be read in this run
        row("inswapper", "int8", 16.0, 1.0),
        row("classic", None, 19.0, 17.0),
    ]
    summary = {item["configuration"]: item for item in summarise_repeats(rows)}
    assert set(summary) == {"inswapper int8", "classic"}
    neural = summary["inswapper int8"]
    assert neural["runs"] == 3
    assert neural["figures"]["display_fps"] == {"median": 15.0, "min": 13.0, "max": 16.0}
    assert neural["figures"]["page_swaps_per_s"] == {"median": 0.9, "min": 0.7, "max": 1.0}
    assert summary["classic"]["figures"]["page_swaps_per_s"] == {"median": 17.5, "min": 17.0, "max": 18.0}


def test_cpu_split_names_the_processes_and_the_idle_and_stolen_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_live, "os_cpu_count", lambda: 2)
    renderer = "/usr/lib/chromium/chromium --type=renderer --lang=en"
    network = "/usr/lib/chromium/chromium --type=utility --utility-sub-type=network.mojom.NetworkService"
    before = (0.0, {1: ("python app.py", 10.0), 2: (renderer, 5.0), 3: (network, 1.0), 4: ("sleep 9", 0.0)}, [0] * 10)
    # Over 2 s: user, nice, system, idle, iowait, irq, softirq, steal (in ticks; 400 ticks = 2 cores x 2 s).
    after_counters = [200, 0, 40, 60, 20, 0, 0, 80, 0, 0]
    after = (
        2.0,
        {1: ("python app.py", 11.6), 2: (renderer, 6.0), 3: (network, 1.1), 4: ("sleep 9", 0.0)},
        after_counters,
    )
    split = bench_live.cpu_split(before, after, app_pid=1)
    assert split["app"] == pytest.approx(0.8)
    assert split["chromium renderer"] == pytest.approx(0.5)
    assert split["chromium network"] == pytest.approx(0.05)
    assert split["idle"] == pytest.approx(0.4)  # idle and iowait ticks: 80 of 400
    assert split["steal"] == pytest.approx(0.4)  # stolen ticks: 80 of 400
    assert split["other"] == 0.0
