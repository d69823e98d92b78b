"""The benchmark scripts still run, small, and keep their noise-free invariants.

Times are never asserted (these machines are noisy); the scripts print the ratios.
What is asserted holds whatever the machine does: one token exchange per 1,000
calls, bounded memory while downloading, few polls and a prompt return.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "benchmarks"))

pytestmark = pytest.mark.slow


def test_bench_session_one_exchange_per_thousand_calls(capsys):
    import bench_session

    result = bench_session.main(["--calls", "50", "--rounds", "3"])
    assert result["exchanges_per_1000"] == 1
    assert "get_json / raw (ratio)" in capsys.readouterr().out


def test_bench_frames_runs_both_date_layouts(capsys):
    import bench_frames

    result = bench_frames.main(["--projects", "300", "--rounds", "3"])
    # the SDK contestant runs wherever the official SDK is installed (Python >= 3.11)
    assert result["raw_ratio"] > 0 and result["iso8601_raw_ratio"] > 0
    assert ("sdk_speedup" in result) == (importlib.util.find_spec("metafold") is not None)
    out = capsys.readouterr().out
    assert "mf.projects() on 310 projects" in out
    assert "rfc1123: mf.projects() / raw (ratio)" in out and "iso8601: mf.projects() / raw (ratio)" in out


def test_bench_transfer_memory_stays_flat(capsys):
    import bench_transfer

    result = bench_transfer.main(["--mib", "64", "--rounds", "2", "--link-mib-s", "256"])
    assert result["rss_growth_mib"] <= 32
    assert "peak RSS growth" in capsys.readouterr().out


def test_bench_workflow_polls_little_and_returns_promptly(capsys):
    import bench_workflow

    result = bench_workflow.main(["--seconds", "4"])
    assert result["polls"] <= 6 and result["lag_s"] <= 5 + 1


def test_bench_geometry_cache_downloads_once_and_views_carry_both_types(capsys, monkeypatch, tmp_path):
    import bench_geometry

    monkeypatch.chdir(tmp_path)
    result = bench_geometry.main(["--faces", "20000", "--mib", "2", "--rounds", "2"])
    assert result["first_call_downloads"] == 1 and result["second_call_bytes"] == 0
    assert result["first_call_bytes"] == result["mesh_bytes"]
    assert result["plotly_bytes"] > 0 and result["png_bytes"] > 0
    assert result["notebook_bytes"] >= result["plotly_bytes"] + result["png_bytes"]
    assert "bytes added to a saved notebook" in capsys.readouterr().out


def test_bench_fanout_one_exchange_no_pool_warnings(capsys):
    import bench_fanout

    result = bench_fanout.main(["--projects", "14", "--latency", "0.02", "--rounds", "1"])
    assert result["projects"] == 14 and result["same_rows"]
    assert result["exchanges"] == 1 and result["pool_warnings"] == 0
    assert "speed-up at the default concurrency 6" in capsys.readouterr().out


def test_bench_studies_polls_429s_and_no_double_dispatch(capsys):
    import bench_studies

    result = bench_studies.main(["--runs", "4", "--seconds", "1", "--concurrency", "4"])
    assert result["polls"] <= 4 * result["polls_one"]
    assert result["completed"] == result["runs"] == result["created"] == 4 and result["rows_match"]
    assert result["refused"] > 0 and result["violations"] == 0  # 4 in flight against a limit of 2
    assert "speed-up" in capsys.readouterr().out


def test_bench_server_keeps_connections_alive(capsys):
    import bench_server

    result = bench_server.main(["--calls", "40", "--rounds", "2"])
    for scheme in ("http", "https"):
        assert result[f"{scheme} keep-alive connections"] == 1  # 100 requests, one connection
        assert result[f"{scheme} keep-alive x16 connections"] <= 16  # 16 threads, at most 16 in all
    assert "kept-alive / new connection (ratio)" in capsys.readouterr().out
