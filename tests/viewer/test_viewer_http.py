"""The viewer's JSON API and files over plain HTTP, on a journal written by the real writer."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from _viewer_helpers import DEADLINE_S, serving
from aiohttp.test_utils import TestClient, TestServer

from antiphon.codecs import read_wav
from antiphon.errors import NotAJournal
from antiphon.journal import Durability, FileJournal
from antiphon.protocol import (
    ConnectionLost,
    ConnectionOpened,
    GenerationAudioDelta,
    GenerationEnded,
    GenerationEndReason,
    GenerationStarted,
    SessionStarted,
    UserAudio,
)
from antiphon.viewer import make_app

STATIC = Path(__file__).resolve().parents[2] / "src" / "antiphon" / "viewer" / "static"
USER_PCM = bytes(range(256)) * 25  # 6400 bytes: 200 ms at 16 kHz
ASSISTANT_PCM = b"\x01\x02" * 4800  # 200 ms at 24 kHz


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiohttp runs on asyncio only


def _write_session(root: Path, session_id: str, *, reconnect: bool) -> None:
    journal = FileJournal(root, durability=Durability.none())
    with journal, journal.writer(session_id) as writer:
        events = [
            SessionStarted(session_id=session_id, provider="openai", model="gpt-realtime"),
            ConnectionOpened(epoch=1),
            UserAudio(epoch=1, audio=USER_PCM, sample_rate=16_000),
            GenerationStarted(generation_id="g1"),
            GenerationAudioDelta(generation_id="g1", audio=ASSISTANT_PCM, sample_rate=24_000),
            GenerationEnded(generation_id="g1", reason=GenerationEndReason.COMPLETED),
        ]
        if reconnect:
            events += [
                ConnectionLost(epoch=1, cause="closed:1006", recoverable=True),
                ConnectionOpened(epoch=2),
            ]
        seq = writer.next_seq
        for i, event in enumerate(events):
            ms = 1_000_000 * 10 * i
            seq = writer.append(
                [event], expected_seq=seq, epoch=1, mono_ns=ms, wall_ns=10**18 + ms
            ).next_seq


@pytest.fixture
def journal_dir(tmp_path: Path) -> Path:
    root = tmp_path / "journal"
    _write_session(root, "s-one", reconnect=True)
    _write_session(root, "s-two", reconnect=False)
    return root


@pytest.fixture
async def client(journal_dir: Path) -> AsyncIterator[TestClient[object, object]]:
    async with TestClient(TestServer(make_app(journal_dir))) as client:
        yield client


@pytest.mark.anyio
async def test_sessions_are_listed(client: TestClient[object, object], journal_dir: Path) -> None:
    response = await client.get("/api/sessions")
    assert response.status == 200
    data = await response.json()
    assert data["journal"] == str(journal_dir)
    assert [s["session_id"] for s in data["sessions"]] == ["s-one", "s-two"]
    assert data["sessions"][0]["provider"] == "openai"
    assert data["sessions"][0]["model"] == "gpt-realtime"
    assert data["initial"] == "s-two"  # the newest


@pytest.mark.anyio
async def test_a_session_view(client: TestClient[object, object]) -> None:
    response = await client.get("/api/sessions/s-one")
    assert response.status == 200
    view = await response.json()
    assert view["session_id"] == "s-one"
    assert view["counts"]["reconnects"] == 1
    assert view["counts"]["generations"] == 1
    assert [r["cause"] for r in view["reconnects"]] == ["closed:1006"]
    user, assistant = view["audio"]
    assert (user["sample_rate"], user["duration_ms"]) == (16_000, 200)
    assert (assistant["sample_rate"], assistant["duration_ms"]) == (24_000, 200)
    assert len(user["peaks"]) > 0


@pytest.mark.anyio
async def test_records_by_seq(client: TestClient[object, object]) -> None:
    response = await client.get("/api/sessions/s-one/records?seq=1,6")
    assert response.status == 200
    records = (await response.json())["records"]
    assert [(r["seq"], r["tag"]) for r in records] == [
        (1, "connection.opened"),
        (6, "connection.lost"),
    ]
    assert records[1]["event"]["cause"] == "closed:1006"
    for query in ("seq=x", "seq=", "seq=-1", "seq=" + ",".join(map(str, range(201)))):
        response = await client.get(f"/api/sessions/s-one/records?{query}")
        assert response.status == 400, query
        assert "error" in await response.json()


@pytest.mark.anyio
async def test_audio_is_served_as_seekable_wav(client: TestClient[object, object]) -> None:
    for stream, pcm, rate in (("user", USER_PCM, 16_000), ("assistant", ASSISTANT_PCM, 24_000)):
        response = await client.get(f"/api/sessions/s-one/audio/{stream}.wav")
        assert response.status == 200
        assert response.headers["Content-Type"] == "audio/wav"
        wav = read_wav(io.BytesIO(await response.read()))
        assert (wav.pcm, wav.sample_rate, wav.channels) == (pcm, rate, 1)
    response = await client.get(
        "/api/sessions/s-one/audio/user.wav", headers={"Range": "bytes=44-53"}
    )
    assert response.status == 206  # byte ranges: what lets the page seek
    assert await response.read() == USER_PCM[:10]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "path",
    [
        "/api/sessions/nope",
        "/api/sessions/nope/records?seq=1",
        "/api/sessions/s-one/audio/other.wav",
        "/api/sessions/..%2Fetc/audio/user.wav",
        "/static/../__init__.py",
    ],
)
async def test_unknown_things_are_404(client: TestClient[object, object], path: str) -> None:
    response = await client.get(path)
    assert response.status == 404


@pytest.mark.anyio
async def test_the_page_and_its_files_are_local(client: TestClient[object, object]) -> None:
    response = await client.get("/")
    assert response.status == 200
    page = await response.text()
    assert "/static/viewer.js" in page
    for name in ("viewer.js", "viewer.css"):
        response = await client.get(f"/static/{name}")
        assert response.status == 200
    for path in sorted(STATIC.iterdir()):
        # No CDN, fonts or scripts from elsewhere: everything the page loads is served here.
        # (The SVG namespace is a name, not something fetched.)
        text = path.read_text().replace("http://www.w3.org/2000/svg", "")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text), path.name


@pytest.mark.anyio
async def test_a_session_directory_opens_its_journal_at_that_session(journal_dir: Path) -> None:
    async with TestClient(TestServer(make_app(journal_dir / "s-one"))) as client:
        data = await (await client.get("/api/sessions")).json()
    assert data["initial"] == "s-one"
    assert len(data["sessions"]) == 2


def test_the_command_serves_the_journal(journal_dir: Path) -> None:
    with serving(journal_dir) as url:
        assert url.startswith("http://127.0.0.1:")  # this machine only, by default
        with urllib.request.urlopen(f"{url}api/sessions", timeout=DEADLINE_S) as response:
            data = json.load(response)
    assert [s["session_id"] for s in data["sessions"]] == ["s-one", "s-two"]


def test_a_path_without_a_journal_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotAJournal):
        make_app(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "antiphon.cli", "journal", "serve", str(tmp_path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "antiphon: error:" in result.stderr
