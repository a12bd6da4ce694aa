"""Smoke test of ``python -m benches sessions``: a tiny run against the OpenAI emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.e2e
def test_sessions_bench_smoke() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    cmd = [sys.executable, "-m", "benches", "sessions", "--provider", "openai"]
    cmd += ["--sessions", "2", "--seconds", "1", "--idle-seconds", "0.5", "--json"]
    done = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    for key in (
        "provider",
        "sessions",
        "seconds",
        "cpu_s_per_session_s",
        "raw_cpu_s_per_session_s",
        "ratio_to_raw",
        "rss_kb_per_session",
        "lateness_ms",
        "audio_delivered",
        "method",
        "scenarios",
    ):
        assert key in result, key
    assert result["provider"] == "openai"
    assert result["sessions"] == 2
    assert set(result["lateness_ms"]) >= {"p50", "p99"}
    assert result["cpu_s_per_session_s"] > 0
    assert result["raw_cpu_s_per_session_s"] > 0
    assert result["ratio_to_raw"] == pytest.approx(
        result["cpu_s_per_session_s"] / result["raw_cpu_s_per_session_s"], rel=0.01
    )
    assert set(result["scenarios"]) == {"24k", "48k"}
    for scenario in result["scenarios"].values():
        # Every user frame either client sent reached the emulator, as the emulator saw it.
        assert scenario["audio_delivered"] is True
        assert scenario["raw_audio_delivered"] is True
        assert scenario["antiphon"]["chunks_per_session"] == 50
        assert scenario["antiphon"]["reconnects"] == 0
    # The continuous conversation runs next to the scripted one, with the same checks.
    continuous = result["continuous"]
    assert continuous["workload"] == "continuous"
    assert continuous["audio_delivered"] is True
    assert continuous["raw_audio_delivered"] is True
    assert continuous["server_events_per_session_s"] > 0
    for figures in (result, continuous):
        assert set(figures["lateness_ms"]) >= {"mean", "p50", "p99", "max"}
        assert isinstance(figures["realtime_held"], bool)
        assert figures["idle_cpu_s_per_session_s"] >= 0
        assert figures["raw_idle_cpu_s_per_session_s"] >= 0
        for key in ("rss_kb_per_session_setup", "rss_kb_per_session_end"):
            assert figures[key] >= 0
            assert figures[f"raw_{key}"] >= 0


@pytest.mark.e2e
def test_sessions_bench_measures_livekit_plugin_beside_the_others() -> None:
    pytest.importorskip("livekit.plugins.openai")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    cmd = [sys.executable, "-m", "benches", "sessions", "--provider", "openai", "--livekit"]
    cmd += ["--workload", "continuous", "--sessions", "2", "--seconds", "1"]
    cmd += ["--idle-seconds", "0.5", "--json"]
    done = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    continuous = result["continuous"]
    for figures in (result, continuous):
        for key in (
            "livekit_cpu_s_per_session_s",
            "ratio_to_livekit",
            "livekit_lateness_ms",
            "livekit_rss_kb_per_session_setup",
            "livekit_rss_kb_per_session_end",
            "livekit_idle_cpu_s_per_session_s",
            "livekit_audio_delivered",
            "livekit_cpu_runs",
        ):
            assert key in figures, key
    assert continuous["livekit_cpu_s_per_session_s"] > 0
    assert continuous["ratio_to_livekit"] == pytest.approx(
        continuous["cpu_s_per_session_s"] / continuous["livekit_cpu_s_per_session_s"], rel=0.01
    )
    assert set(continuous["livekit_lateness_ms"]) >= {"mean", "p50", "p99", "max"}
    assert len(continuous["livekit_cpu_runs"]) == 1
    # Delivery was checked against what the emulator received: one connection per session,
    # each with the plugin's whole 100 ms blocks of the input (all of it, at 1 s).
    delivery = continuous["livekit"]["delivery"]
    assert continuous["livekit_audio_delivered"] is True
    assert delivery["connections"] == 2
    assert delivery["exact"] == 2
    assert delivery["bytes_expected"] == [48_000]
    assert continuous["livekit"]["chunks_per_session"] == 50
    assert continuous["livekit"]["plugin_errors"] == []
    assert continuous["audio_delivered"] is True
    assert continuous["raw_audio_delivered"] is True


def test_repeated_runs_report_the_median_run_and_every_figure() -> None:
    sys.path.insert(0, str(ROOT))
    from benches.sessions import _median

    runs = [
        ({"cpu_s_per_session_s": 0.3, "n": 1}, {"ok": True}),
        ({"cpu_s_per_session_s": 0.1, "n": 2}, {"ok": True}),
        ({"cpu_s_per_session_s": 0.2, "n": 3}, {"ok": False}),
    ]
    (result, check), cpus = _median(runs)
    assert result["n"] == 3  # the median CPU figure's run
    assert check["ok"] is False  # audio counts as delivered only if every run delivered it
    assert cpus == [0.3, 0.1, 0.2]
