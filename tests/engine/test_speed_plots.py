"""The speed plots are drawn from the benchmarks' own JSON shape."""

import json

from benchmarks.speed_plots import plot_growth, plot_serving


def test_plots_are_written_from_benchmark_json(tmp_path):
    growth = {"megabatches": 3, "model": "m", "runs": {
        "full": {"update_seconds": [1.0, 2.0, 3.0], "peak_rss_mib": 10.0},
        "buffer": {"update_seconds": [1.0, 1.1, 1.1], "peak_rss_mib": 9.0}}}
    serving = {"predict": [{"clients": c, "requests_per_s": 100.0 * c, "p99_ms": 5.0 * c} for c in (1, 8, 32)]}
    (tmp_path / "growth.json").write_text(json.dumps(growth))
    (tmp_path / "serving.json").write_text(json.dumps(serving))
    plot_growth(tmp_path / "growth.json", tmp_path / "growth.png")
    plot_serving(tmp_path / "serving.json", tmp_path / "missing.json", tmp_path / "serving.png")
    for name in ("growth.png", "serving.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
