"""The command line on user mistakes and failures: one ``antiphon: error:`` line saying what is
wrong and what to do, exit 2 for a usage error, 1 for a failure, never a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from antiphon.cli import main
from antiphon.codecs import write_wav


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("antiphon: error: ")
    return lines[0]


@pytest.fixture
def wav16(tmp_path: Path) -> Path:
    path = tmp_path / "in.wav"
    write_wav(path, bytes(3200), 16_000)
    return path


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # closed again: connecting is refused


def test_run_with_an_unreachable_service_names_the_connection_failure(
    tmp_path: Path,
    wav16: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    url = f"ws://127.0.0.1:{closed_port()}/v1/realtime"
    argv = ["run", "--input", str(wav16), "--output", str(tmp_path / "o.wav"), "--url", url]
    assert main(argv) == 1
    line = one_error_line(capsys)
    assert "could not connect" in line
    assert url in line
    assert not (tmp_path / "o.wav").exists()


def test_run_with_a_96_khz_wav_says_what_rates_to_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    wav = tmp_path / "hi.wav"
    write_wav(wav, bytes(19_200), 96_000)
    assert main(["run", "--input", str(wav), "--output", str(tmp_path / "o.wav")]) == 2
    line = one_error_line(capsys)
    assert "96000 Hz" in line
    assert "24000" in line


@pytest.mark.parametrize(
    ("name", "message"),
    [("missing.wav", "no such file"), (".", "is not a file"), ("notes.txt", "not a 16-bit PCM")],
)
def test_run_with_an_unusable_input(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    message: str,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    (tmp_path / "notes.txt").write_text("not audio")
    argv = ["run", "--input", str(tmp_path / name), "--output", str(tmp_path / "o.wav")]
    assert main(argv) == 2
    assert message in one_error_line(capsys)


def test_run_with_an_output_in_a_missing_directory(
    tmp_path: Path, wav16: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    argv = ["run", "--input", str(wav16), "--output", str(tmp_path / "no" / "o.wav")]
    assert main(argv) == 2
    assert "does not exist" in one_error_line(capsys)


def test_run_without_credentials(
    tmp_path: Path, wav16: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert main(["run", "--input", str(wav16), "--output", str(tmp_path / "o.wav")]) == 2
    assert "OPENAI_API_KEY" in one_error_line(capsys)


@pytest.mark.parametrize(
    ("journal", "message"),
    [
        ("/proc/antiphon-demo-journal", "cannot create it"),
        ("{tmp}/file.txt", "exists and is not a directory"),
    ],
)
def test_demo_with_an_unusable_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], journal: str, message: str
) -> None:
    (tmp_path / "file.txt").write_text("x")
    argv = ["demo", "--journal", journal.format(tmp=tmp_path), "--speed", "0", "--quiet"]
    assert main(argv) == 2
    assert message in one_error_line(capsys)
