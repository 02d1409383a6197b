"""The live benchmark's summary of repeated runs (the runs themselves need a browser: see bench_live)."""

from __future__ import annotations

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
