"""The speed plots are drawn from the benchmarks' own JSON shape."""

import json

from benchmarks.speed_plots import plot_growth, plot_serving


def test_plots_are_written_from_benchmark_json(tmp_path):
    growth = {
        "megabatches": 3,
        "model": "m",
        "runs": {
            "full": {"update_seconds": [1.0, 2.0, 3.0], "peak_rss_mib": 10.0},
            "buffer": {"update_seconds": [1.0, 1.1, 1.1], "peak_rss_mib": 9.0},
        },
    }
    serving = {
        "predict": [
            {"clients": c, "requests_per_s": 100.0 * c, "p99_ms": 5.0 * c} for c in (1, 8, 32)
        ]
    }
    (tmp_path / "growth.json").write_text(json.dumps(growth))
    (tmp_path / "serving.json").write_text(json.dumps(serving))
    plot_growth(tmp_path / "growth.json", tmp_path / "growth.png")
    plot_serving(tmp_path / "serving.json", tmp_path / "missing.json", tmp_path / "serving.png")
    for name in ("growth.png", "serving.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_serving_report_divides_each_client_count_by_the_raw_forward_at_that_batch():
    from benchmarks.serving_speed import render_markdown

    result = json.loads(
        json.dumps(
            {  # through JSON, as the report is regenerated: batch keys become strings
                "predict": [
                    {
                        "clients": c,
                        "requests_per_s": 100.0,
                        "p50_ms": 1.0,
                        "p99_ms": 2.0,
                        "errors": 0,
                    }
                    for c in (1, 8)
                ],
                "raw_forward_images_per_s": {1: 200.0, 8: 1000.0},
                "ingest": [
                    {
                        "form": "npz",
                        "samples_per_s": 1.0,
                        "MB_per_s": 1.0,
                        "bytes_per_sample": 1.0,
                        "chunk_samples": 4,
                    }
                ],
                "seconds": 1.0,
                "width": 0.25,
            }
        )
    )
    page = render_markdown(result)
    assert "| 1 | 100.0 | 1.0 | 2.0 | 0 | 0.50 | 0.50 |" in page
    assert "| 8 | 100.0 | 1.0 | 2.0 | 0 | 0.50 | 0.10 |" in page
