"""``antiphon journal ...``: run in-process through ``main`` and once as the console script."""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from antiphon.cli import main
from antiphon.journal import Durability, FileJournal
from antiphon.protocol import (
    ConnectionLost,
    ConnectionOpened,
    Event,
    GenerationAudioDelta,
    GenerationEnded,
    GenerationEndReason,
    GenerationStarted,
    GenerationTextDelta,
    InputTranscriptDelta,
    InputTranscriptFinal,
    SessionStarted,
    ToolCallFinished,
    ToolCallRequested,
    UserAudio,
    UserSpeechStarted,
    UserSpeechStopped,
)

USER_FRAME = bytes(range(256)) * 2 + bytes(128)  # 640 bytes: 20 ms at 16 kHz
ASSISTANT_CHUNK = b"\x10\x00" * 960  # 40 ms at 24 kHz


def record_session(root: Path) -> Path:
    """A short conversation as the runtime journals it: audio first, then its event."""
    journal = FileJournal(root, durability=Durability.none())
    w = journal.writer("call-1")
    t = 1_700_000_000_000_000_000

    def add(events: list[Event], dt_ms: int = 20, epoch: int = 1) -> None:
        nonlocal t
        t += dt_ms * 1_000_000
        w.append(events, expected_seq=w.next_seq, epoch=epoch, mono_ns=t, wall_ns=t)

    add([SessionStarted(session_id="call-1", provider="openai", model="gpt-realtime")], 0)
    add([ConnectionOpened(epoch=1, provider_session_id="sess_1")])
    add([UserSpeechStarted(item_id="u1")])
    for k in range(50):  # 1 s of user speech
        span = w.write_audio("user", USER_FRAME, 16_000)
        batch: list[Event] = [UserAudio(epoch=1, first_frame=k, frames=1, span=span)]
        if k == 25:
            batch.append(InputTranscriptDelta(item_id="u1", text="weather in "))
        add(batch)
    add([InputTranscriptDelta(item_id="u1", text="Lisbon?"), UserSpeechStopped(item_id="u1")])
    add([InputTranscriptFinal(item_id="u1", text="What is the weather in Lisbon?")])
    add([GenerationStarted(generation_id="g1")])
    add([ToolCallRequested(call_id="c1", name="get_weather", arguments='{"city":"Lisbon"}')])
    add([ToolCallFinished(call_id="c1", name="get_weather", output='{"temp_c":21}')])
    add([GenerationEnded(generation_id="g1", reason=GenerationEndReason.TOOL_CALL)])
    add([GenerationStarted(generation_id="g2")])
    for k in range(31):  # 1.24 s of assistant speech
        span = w.write_audio("assistant", ASSISTANT_CHUNK, 24_000)
        batch = [GenerationAudioDelta(generation_id="g2", item_id="a2", span=span)]
        if k in (0, 10):
            text = "It is 21 degrees " if k == 0 else "and sunny."
            batch.append(GenerationTextDelta(generation_id="g2", item_id="a2", text=text))
        add(batch, 40)
    add([GenerationEnded(generation_id="g2", reason=GenerationEndReason.COMPLETED)])
    add([ConnectionLost(epoch=1, cause="session_expired", recoverable=True)], 10)
    w.close()
    return root


@pytest.fixture
def journal_dir(tmp_path: Path) -> Path:
    return record_session(tmp_path / "calls")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_show_reads_like_the_conversation(
    journal_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "journal", "show", str(journal_dir))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("session call-1")
    body = "\n".join(lines[2:])
    assert "user audio 1.00 s (50 chunks)" in body
    assert 'user: "weather in Lisbon?" (2 deltas)' in body
    assert 'user: "What is the weather in Lisbon?"' in body
    assert 'get_weather({"city":"Lisbon"}) [c1]' in body
    assert 'get_weather -> ok: {"temp_c":21} [c1]' in body
    assert "assistant audio 1.24 s (31 chunks)" in body
    assert 'assistant: "It is 21 degrees and sunny." (2 deltas)' in body
    assert "epoch 1: session_expired (recoverable)" in body
    first = lines[2].split()
    assert first[:3] == ["0.000", "e1", "session.started"]
    # Times are relative and increase down the timeline.
    times = [float(line.split()[0]) for line in lines[2:]]
    assert times == sorted(times)
    assert times[-1] == pytest.approx(2.45, abs=0.01)


def test_show_all_has_one_line_per_record(
    journal_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "journal", "show", "--all", str(journal_dir / "call-1"))
    assert code == 0
    records = out.splitlines()[2:]
    assert len(records) == 97
    assert records[-1].endswith("#96")


def test_stats_json(journal_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "journal", "stats", str(journal_dir), "--json")
    assert code == 0
    stats = json.loads(out)
    assert stats["records"] == 97
    assert (stats["first_seq"], stats["last_seq"]) == (0, 96)
    assert stats["counts"]["user.audio"] == 50
    assert stats["counts"]["generation.audio"] == 31
    assert stats["counts"]["tool.requested"] == 1
    assert stats["audio_s"] == {"user": 1.0, "assistant": 1.24}
    assert stats["duration_s"] == pytest.approx(2.45, abs=0.01)
    assert stats["epochs"] == [1]
    assert stats["segment_bytes"] > 16
    assert stats["total_bytes"] > 50 * 640 + 31 * 1920
    code, out, _ = run(capsys, "journal", "stats", str(journal_dir))
    assert code == 0
    assert "user 1.00 s, assistant 1.24 s" in out


def test_check_clean_torn_and_corrupt(
    journal_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "journal", "check", str(journal_dir))
    assert code == 0
    assert "records     97 intact" in out
    assert "tail        clean" in out
    seg = journal_dir / "call-1" / "000000000000.seg"
    data = seg.read_bytes()
    seg.write_bytes(data[:-5])  # a torn tail: reported, still exit 0
    code, out, _ = run(capsys, "journal", "check", str(journal_dir))
    assert code == 0
    assert "torn" in out
    assert "records     96 intact" in out
    code, out, _ = run(capsys, "journal", "check", "--repair", str(journal_dir))
    assert (code, "truncated" in out) == (0, True)
    damaged = bytearray(seg.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # a record in the middle
    seg.write_bytes(bytes(damaged))
    code, out, _ = run(capsys, "journal", "check", str(journal_dir), "--json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False
    assert report["corrupt"][0]["path"] == str(seg)
    code, out, err = run(capsys, "journal", "show", str(journal_dir))
    assert code == 1
    assert "session.started" in out  # what precedes the damage is still shown
    assert "damaged record" in err
    assert "Traceback" not in err


def test_export_audio_writes_both_sides(
    journal_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "wav"
    code, out, _ = run(capsys, "journal", "export-audio", str(journal_dir), "--out", str(out_dir))
    assert code == 0
    with wave.open(str(out_dir / "call-1-user.wav"), "rb") as f:
        assert (f.getframerate(), f.getnchannels(), f.getsampwidth()) == (16_000, 1, 2)
        assert f.readframes(f.getnframes()) == USER_FRAME * 50
    with wave.open(str(out_dir / "call-1-assistant.wav"), "rb") as f:
        assert f.getframerate() == 24_000
        assert f.readframes(f.getnframes()) == ASSISTANT_CHUNK * 31
    assert "1.24 s" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["journal", "show", "{tmp}/missing"], "no such file or directory"),
        (["journal", "stats", "{tmp}/plain", "--json"], "not an antiphon journal"),
        (["journal", "check", "{tmp}/plain/notes.txt"], "not an antiphon journal"),
        (["journal", "export-audio", "{tmp}/missing", "--out", "{tmp}/o"], "no such file"),
    ],
)
def test_user_mistakes_exit_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("not a journal")
    code, _, err = run(capsys, *[a.format(tmp=tmp_path) for a in argv])
    assert code == 2
    assert message in err
    assert err.startswith("antiphon: error:")
    assert "Traceback" not in err


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "journal", "show")[0] == 2
    assert run(capsys, "journal")[0] == 2
    assert run(capsys, "nonsense")[0] == 2
    assert run(capsys, "--help")[0] == 0


def test_console_script(journal_dir: Path, tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "antiphon"
    if not script.exists():
        pytest.skip("console script not installed: pip install -e . --no-deps")
    done = subprocess.run(
        [str(script), "journal", "stats", str(journal_dir), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["records"] == 97
    done = subprocess.run(
        [str(script), "journal", "check", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "no such file or directory" in done.stderr
    assert "Traceback" not in done.stderr
