"""antiphon behind LiveKit Agents' ``RealtimeModel`` interface.

How this works: each :class:`RealtimeSession` owns one antiphon session, opened with
:func:`antiphon.open_session` in a task of its own as soon as LiveKit creates it. LiveKit's
calls are synchronous or return at once; they become antiphon calls run one after another, in
the order LiveKit made them, by a pump task (audio frames stay in order with commits,
interrupts and updates). The session's app events are read in order and turned into
LiveKit's: a reply becomes a ``generation_created`` whose message stream carries the text
and the audio, a ``ToolCallRequested`` goes out on that generation's function stream.

LiveKit runs the tools: every LiveKit tool is registered with antiphon as an app-executed
:class:`~antiphon.Tool` (a spec, no callable), so antiphon records each call and waits. The
output comes back as a ``FunctionCallOutput`` appended to the context given to
:meth:`RealtimeSession.update_chat_ctx`; it is submitted with ``Session.submit_tool_result``,
which journals it and delivers it to the provider exactly once, on the current connection or
on the next one after a reconnect. ``chat_ctx`` is built from antiphon's own conversation
state every time it is read, so what LiveKit compares against is what antiphon holds.

History edits: ``update_chat_ctx`` computes LiveKit's diff between ``chat_ctx`` and the
context it is given, after naming LiveKit's items by antiphon's ids where both hold the same
item (a tool call by its call id; a message LiveKit made of a reply or a typed text by its
role and text). Deletions, insertions and changed messages become one
``Session.edit_history``: journalled, applied live where the provider can edit its
conversation (OpenAI), by a rotation to a fresh connection seeded with the edited history
elsewhere. A user message or tool output appended at the end goes the ordinary way
(``send_text``, ``submit_tool_result``), live on every provider.

The error contract: LiveKit closes an ``AgentSession`` on the first ``RealtimeModelError``
with ``recoverable=False``. antiphon reconnects, rotates and re-seeds by itself, so provider
notices it survived go out as recoverable errors, and ``recoverable=False`` is emitted only
when the antiphon session has really ended in failure (its reconnect budget spent, a fatal
provider error, a failed first connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Never

from livekit import rtc
from livekit.agents import llm, utils
from livekit.agents.metrics import RealtimeModelMetrics
from livekit.agents.types import NOT_GIVEN, NotGivenOr
from livekit.agents.utils import is_given

from ..actors import Backoff, Intensity, Session, Tool, open_session, resume_session
from ..adapters import Provider
from ..errors import AntiphonError
from ..events import (
    AssistantAudio,
    AssistantText,
    ProviderNotice,
    Reconnected,
    ReplyEnded,
    ReplyStarted,
    SessionEnded,
    SessionEvent,
    ToolCallFinished,
    ToolCallRequested,
    UserSpeechStarted,
    UserSpeechStopped,
    UserTranscript,
)
from ..failover import members
from ..journal import Journal
from ..protocol import (
    AssistantMessage,
    FunctionCall,
    FunctionOutput,
    GenerationEndReason,
    HistoryInsert,
    Item,
    ToolCallStatus,
    ToolOutcome,
    ToolSpec,
    UserMessage,
)

logger = logging.getLogger("antiphon.livekit")

_Command = Callable[[Session], Awaitable[None]]

# LiveKit pushes 10 ms frames; 6000 commands hold a minute of them, more than the first
# connection's timeout plus a whole reconnect budget. The pump drains the queue as fast as
# antiphon's audio-in accepts audio (it never waits on the provider), so the queue only grows
# while the first connection is being opened. On overrun the oldest command is dropped and
# counted in ``RealtimeSession.commands_dropped``.
_COMMAND_QUEUE = 6000
# What antiphon's presets can do besides what their translators declare (LiveKit asks more).
_USER_TRANSCRIPTION = {"openai", "xai", "gemini", "nova", "phonic"}


def _capabilities(provider: Provider) -> llm.RealtimeCapabilities:
    """What the model declares. For a failover, only what every one of its providers can do:
    the session may be on any of them when LiveKit relies on it."""
    each = [p.new_translator().capabilities for p in members(provider)]
    return llm.RealtimeCapabilities(
        message_truncation=all(c.truncate for c in each),
        turn_detection=all(c.server_vad for c in each),
        user_transcription=all(p.name in _USER_TRANSCRIPTION for p in members(provider)),
        # antiphon asks for the reply itself once the last output of a turn is delivered.
        auto_tool_reply_generation=True,
        audio_output=True,
        manual_function_calls=False,
        # Every provider takes history edits: live where it can edit its conversation
        # (caps.edit_history), else on a fresh connection at the next turn boundary.
        mutable_chat_context=True,
        mutable_instructions=True,
        mutable_tools=True,
        per_response_tool_choice=all(c.reply_tools for c in each),
    )


class RealtimeModel(llm.RealtimeModel):
    """Any antiphon provider preset as a LiveKit Agents realtime model.

    ::

        session = AgentSession(llm=antiphon.livekit.RealtimeModel(antiphon.providers.NovaSonic()))

    Every LiveKit session gets antiphon's continuity (reconnects with its audio and its tool
    calls carried over, rotation before a provider's limits) and a journal of the call.

    Args:
        provider: A configured preset, e.g. ``antiphon.providers.OpenAIRealtime()``.
        journal: Where sessions are journalled (default: a new temporary directory each).
        session_id: The antiphon session id of the first session (default: random).
        reconnect: Reconnect budget (see :func:`antiphon.open_session`).
        backoff: Delay between reconnect attempts.
        generate_reply_timeout_s: How long ``generate_reply`` waits for the reply to start.
        resume: The id of a session in ``journal`` to carry on (a LiveKit agent restarted
            after a crash): the first session this model makes resumes it with
            :func:`antiphon.resume_session`, so the provider is primed with the journalled
            conversation and undelivered tool outputs are delivered. The agent's starting
            chat context then adds to the journalled history and removes nothing.

    Raises:
        ValueError: ``resume`` is given without a ``journal``.
    """

    def __init__(
        self,
        provider: Provider,
        *,
        journal: Journal | None = None,
        session_id: str | None = None,
        reconnect: Intensity | None = None,
        backoff: Backoff | None = None,
        generate_reply_timeout_s: float = 10.0,
        resume: str | None = None,
    ) -> None:
        if resume is not None and journal is None:
            raise ValueError("resume names a session of a journal: give the journal too")
        super().__init__(capabilities=_capabilities(provider))
        self.antiphon_provider = provider
        self.journal = journal
        self.session_id = session_id
        self.resume = resume
        self.reconnect = reconnect
        self.backoff = backoff
        self.generate_reply_timeout_s = generate_reply_timeout_s
        self._sessions: list[RealtimeSession] = []

    @property
    def model(self) -> str:
        return self.antiphon_provider.model

    @property
    def sessions(self) -> tuple[RealtimeSession, ...]:
        """The sessions this model made that are not closed yet, oldest first."""
        return tuple(self._sessions)

    @property
    def provider(self) -> str:
        return self.antiphon_provider.name

    def session(self, *, turn_detection_disabled: bool = False) -> RealtimeSession:
        """A new session (opened in the background on the running event loop).

        ``turn_detection_disabled`` is not honoured (``can_disable_turn_detection`` is False):
        the provider detects turns as its preset says.
        """
        session_id, self.session_id = self.session_id, None  # a session id is used once
        resume, self.resume = self.resume, None
        created = RealtimeSession(self, session_id=session_id, resume=resume)
        self._sessions.append(created)
        return created

    async def aclose(self) -> None:
        for created in tuple(self._sessions):
            await created.aclose()

    def _forget(self, session: RealtimeSession) -> None:
        if session in self._sessions:
            self._sessions.remove(session)


@dataclass(eq=False)
class _Generation:
    event: llm.GenerationCreatedEvent
    text: utils.aio.Chan[str]
    audio: utils.aio.Chan[rtc.AudioFrame]
    messages: utils.aio.Chan[llm.MessageGeneration]
    functions: utils.aio.Chan[llm.FunctionCall]
    started_at: float
    input_tokens: int
    output_tokens: int
    first_audio_at: float | None = None

    def close(self) -> None:
        for chan in (self.text, self.audio, self.messages, self.functions):
            chan.close()


class RealtimeSession(llm.RealtimeSession[Never]):
    """One antiphon session as a LiveKit realtime session. Made by
    :meth:`RealtimeModel.session`; see the module docstring for how it maps LiveKit's calls.
    """

    def __init__(
        self, model: RealtimeModel, *, session_id: str | None = None, resume: str | None = None
    ) -> None:
        super().__init__(model)
        self._model = model
        self._session_id = session_id
        self._resume = resume
        # A resumed session's history comes from its journal: the agent's first context
        # (LiveKit sends it when the session starts) adds to it, never deletes from it.
        self._keep_history = resume is not None
        self._session: Session | None = None
        self._opened = asyncio.Event()
        self._commands: deque[_Command] = deque()
        self._wake = asyncio.Event()
        self._tools = llm.ToolContext.empty()
        self._replies: deque[asyncio.Future[llm.GenerationCreatedEvent]] = deque()
        self._generation: _Generation | None = None
        self._last_message_id = ""
        # Gemini and Nova report a barge-in only by cutting the reply: the user's speech is
        # reported to LiveKit on their behalf (see _on_event), and its end before what follows.
        self._speech_seen = False  # the provider reported user speech during this reply
        self._interrupting = False  # LiveKit asked to stop this reply
        self._speech_reported = False  # a start was reported on the provider's behalf
        self._ended = False
        self.commands_dropped = 0
        self.antiphon_error: BaseException | None = None
        self._task = asyncio.create_task(self._main(), name="antiphon.livekit.session")

    # -- what LiveKit reads ----------------------------------------------------------------------

    @property
    def antiphon_session(self) -> Session | None:
        """The antiphon session, once it is open (for its journal and statistics)."""
        return self._session

    @property
    def chat_ctx(self) -> llm.ChatContext:
        """antiphon's conversation, as a LiveKit chat context (built afresh on each read)."""
        if self._session is None:
            return llm.ChatContext.empty()
        return llm.ChatContext([_chat_item(item) for item in self._session.state.items])

    @property
    def tools(self) -> llm.ToolContext:
        return self._tools.copy()

    # -- LiveKit's calls -------------------------------------------------------------------------

    async def update_instructions(self, instructions: str) -> None:
        self._queue(lambda s: s.update_instructions(instructions))

    async def update_tools(self, tools: list[llm.Tool]) -> None:
        self._queue(self._set_tools(tools))

    def _set_tools(self, tools: list[llm.Tool]) -> _Command:
        context = llm.ToolContext(tools)
        specs = [
            _tool_spec(schema) for schema in context.parse_function_tools("openai", strict=False)
        ]
        self._tools = context
        return lambda s: s.update_tools([Tool(spec=spec) for spec in specs])

    def update_options(self, *, tool_choice: NotGivenOr[llm.ToolChoice | None] = NOT_GIVEN) -> None:
        if isinstance(tool_choice, str):
            choice: Any = tool_choice
        elif isinstance(tool_choice, dict):
            choice = {"type": "function", "name": _tool_choice(tool_choice)}
        else:
            return
        self._queue(lambda s: s.update_options(tool_choice=choice))

    async def update_chat_ctx(self, chat_ctx: llm.ChatContext) -> None:
        """Make antiphon's conversation what ``chat_ctx`` says (see the module docstring).

        Tool outputs for calls waiting for them are submitted (each delivered exactly once);
        a user message appended at the end is sent as text, without asking for a reply;
        every other difference (items deleted, inserted or changed) is one history edit.

        Raises:
            llm.RealtimeError: an output answers a call antiphon does not know or that
                already has another output (it is not delivered again); antiphon refused
                the edit; or the session is not open.
        """
        session = await self._wait_open()
        keep_history, self._keep_history = self._keep_history, False
        wanted = [item for item in chat_ctx.items if _conversational(item)]
        refused, dropped = _submit_outputs(session, wanted)
        wanted = [item for item in wanted if item.id not in dropped]
        ours = list(self.chat_ctx.items)
        theirs = _aligned(wanted, ours)
        held = {item.id for item in ours}
        # LiveKit's empty messages are placeholders (or content it does not sync): an empty
        # message is neither created nor, when antiphon holds it, deleted.
        theirs = [item for item in theirs if not _empty(item) or item.id in held]
        by_id = {item.id: item for item in theirs}
        diff = llm.utils.compute_chat_ctx_diff(llm.ChatContext(ours), llm.ChatContext(theirs))
        ours_by_id = {item.id: item for item in ours}

        def antiphon_id(chat_id: str | None) -> str:
            """The antiphon id of a chat item (a tool call's and its output's: the call id)."""
            if chat_id is None:
                return ""
            item = by_id.get(chat_id) or ours_by_id.get(chat_id)
            if isinstance(item, llm.FunctionCall | llm.FunctionCallOutput):
                return item.call_id
            return chat_id

        delete = [
            item_id
            for item_id in diff.to_remove
            if not keep_history and not _empty(ours_by_id[item_id])
        ]
        creates = list(diff.to_create)
        texts: list[str] = []
        # A user message appended at the end (with nothing after it) is plain typed text.
        while creates and theirs and creates[-1][1] == theirs[-1].id:
            last = by_id[creates[-1][1]]
            if not (isinstance(last, llm.ChatMessage) and last.role == "user"):
                break
            texts.insert(0, last.text_content or "")
            creates.pop()
            theirs.pop()
        insert: list[HistoryInsert] = []
        for previous, item_id in creates:
            item = _antiphon_item(by_id[item_id])
            if item is None:  # an output antiphon could not take (refused above)
                continue
            insert.append(HistoryInsert(item=item, after=antiphon_id(previous)))
        if not keep_history:
            for previous, item_id in diff.to_update:
                item = _antiphon_item(by_id[item_id])
                if item is not None:
                    delete.append(item_id)
                    insert.append(HistoryInsert(item=item, after=antiphon_id(previous)))
        delete = list(dict.fromkeys(antiphon_id(item_id) for item_id in delete))
        if delete or insert:
            try:
                await session.edit_history(delete=delete, insert=insert)
            except AntiphonError as exc:
                refused.append(str(exc))
        for text in texts:
            self._queue(_user_text(text))
        if refused:
            raise llm.RealtimeError("; ".join(refused), code="tool_output_refused")

    def push_audio(self, frame: rtc.AudioFrame) -> None:
        pcm = bytes(frame.data)
        rate, channels = frame.sample_rate, frame.num_channels
        self._queue(lambda s: s.send_audio(pcm, sample_rate=rate, channels=channels))

    def push_video(self, frame: rtc.VideoFrame) -> None:
        """Video is not sent: antiphon's providers are driven as audio sessions."""

    def generate_reply(
        self,
        *,
        instructions: NotGivenOr[str] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        tools: NotGivenOr[list[llm.Tool]] = NOT_GIVEN,
    ) -> asyncio.Future[llm.GenerationCreatedEvent]:
        """Ask for a reply; the future resolves with its ``GenerationCreatedEvent``.

        ``tool_choice`` and ``tools`` apply to this reply only where the provider can choose
        tools per reply (``per_response_tool_choice``: OpenAI); elsewhere LiveKit sets them
        for the session with ``update_options`` / ``update_tools`` instead. A tool offered
        here that the session does not have yet is added to the session's tools first (its
        calls must reach LiveKit like the others').
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[llm.GenerationCreatedEvent] = loop.create_future()
        if self._ended:
            future.set_exception(llm.RealtimeError("the antiphon session has ended"))
            return future
        self._replies.append(future)
        text = instructions if isinstance(instructions, str) else ""
        choice = _tool_choice(tool_choice) if is_given(tool_choice) else None
        names: list[str] | None = None
        if isinstance(tools, list):
            context = llm.ToolContext(tools)
            names = list(context.function_tools)
            if set(names) - set(self._tools.function_tools):
                self._queue(self._set_tools([*self._tools.flatten(), *context.flatten()]))
        self._queue(lambda s: s.generate_reply(instructions=text, tool_choice=choice, tools=names))

        def expire() -> None:
            if not future.done():
                with contextlib.suppress(ValueError):
                    self._replies.remove(future)
                future.set_exception(llm.RealtimeError("generate_reply timed out"))

        handle = loop.call_later(self._model.generate_reply_timeout_s, expire)
        future.add_done_callback(lambda _: handle.cancel())
        return future

    def commit_audio(self) -> None:
        self._queue(lambda s: s.commit_audio())

    def clear_audio(self) -> None:
        """Discard the user audio not committed yet (``Session.clear_audio``): antiphon drops
        what it has not sent and will not re-send what it sent; OpenAI clears its input
        buffer. Other providers have heard what was sent already."""
        self._queue(lambda s: s.clear_audio())

    def interrupt(self) -> None:
        """Stop the reply being generated; nothing is sent when no reply is open (LiveKit
        calls this freely, and a provider answers a needless cancel with an error)."""
        if self._generation is not None:
            self._interrupting = True
            self._queue(lambda s: s.interrupt())

    def truncate(
        self,
        *,
        message_id: str,
        modalities: list[Literal["text", "audio"]],
        audio_end_ms: int,
        audio_transcript: NotGivenOr[str] = NOT_GIVEN,
    ) -> None:
        """Tell antiphon how much of the newest reply the user heard (``played_ms``)."""
        if message_id != self._last_message_id or "audio" not in modalities:
            return
        played = max(0, int(audio_end_ms))
        self._queue(lambda s: s.interrupt(played_ms=played))

    async def aclose(self) -> None:
        """Close the antiphon session cleanly (its queued audio is sent first)."""
        if not self._task.done():
            if self._session is None:
                self._task.cancel()
            else:
                self._queue(lambda s: s.aclose())
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._model._forget(self)

    # -- the session's task ----------------------------------------------------------------------

    def _queue(self, command: _Command) -> None:
        if self._ended:
            return
        if len(self._commands) >= _COMMAND_QUEUE:
            self._commands.popleft()
            self.commands_dropped += 1
        self._commands.append(command)
        self._wake.set()

    async def _wait_open(self) -> Session:
        if self._session is None and not self._ended:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._opened.wait(), timeout=30.0)
        if self._session is None or self._ended:
            raise llm.RealtimeError("the antiphon session is not open")
        return self._session

    async def _main(self) -> None:
        try:
            async with self._open() as session:
                self._session = session
                self._opened.set()
                pump = asyncio.create_task(self._pump(session), name="antiphon.livekit.pump")
                try:
                    async for event in session.events():
                        self._on_event(event)
                finally:
                    pump.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await pump
        except Exception as exc:  # the first connection failed, or the session broke
            self._fatal(exc)
        finally:
            self._ended = True
            self._end_generation(cancelled=True)
            while self._replies:
                future = self._replies.popleft()
                if not future.done():
                    future.set_exception(llm.RealtimeError("the antiphon session has ended"))

    def _open(self) -> contextlib.AbstractAsyncContextManager[Session]:
        model = self._model
        if self._resume is not None and model.journal is not None:
            # Calls of LiveKit's tools still waiting for their outputs are announced again,
            # for the agent to run: the journalled tools are app-executed.
            specs = model.journal.replay(self._resume).tools
            return resume_session(
                model.journal,
                self._resume,
                model.antiphon_provider,
                tools=[Tool(spec=spec) for spec in specs],
                reconnect=model.reconnect,
                backoff=model.backoff,
            )
        return open_session(
            model.antiphon_provider,
            journal=model.journal,
            session_id=self._session_id,
            reconnect=model.reconnect,
            backoff=model.backoff,
        )

    async def _pump(self, session: Session) -> None:
        while True:
            while self._commands:
                command = self._commands.popleft()
                try:
                    await command(session)
                except AntiphonError as exc:
                    if session.closed:
                        return
                    self._emit_error(exc, recoverable=True)
            self._wake.clear()
            await self._wake.wait()

    # -- antiphon's events -> LiveKit's events ---------------------------------------------------

    def _on_event(self, event: SessionEvent) -> None:
        match event:
            case UserSpeechStarted():
                self._speech_seen = True
                self.emit("input_speech_started", llm.InputSpeechStartedEvent())
            case UserSpeechStopped():
                self._speech_stopped()
            case UserTranscript(final=True):
                if self._speech_reported:
                    self._speech_stopped()
                self.emit(
                    "input_audio_transcription_completed",
                    llm.InputTranscriptionCompleted(
                        item_id=event.item_id, transcript=event.text, is_final=True
                    ),
                )
            case ReplyStarted():
                if self._speech_reported:
                    self._speech_stopped()
                self._speech_seen = self._interrupting = False
                self._start_generation(event.generation_id)
            case AssistantAudio():
                gen = self._generation
                if gen is not None and event.pcm:
                    if gen.first_audio_at is None:
                        gen.first_audio_at = time.time()
                    gen.audio.send_nowait(
                        rtc.AudioFrame(event.pcm, event.sample_rate, 1, len(event.pcm) // 2)
                    )
            case AssistantText():
                if self._generation is not None:
                    self._generation.text.send_nowait(event.text)
            case ToolCallRequested():
                gen = self._generation or self._start_generation(f"calls-{event.call_id}")
                gen.functions.send_nowait(
                    llm.FunctionCall(
                        id=event.call_id,
                        call_id=event.call_id,
                        name=event.name,
                        arguments=event.arguments,
                    )
                )
            case ReplyEnded():
                cut = event.reason is GenerationEndReason.INTERRUPTED
                if cut and self._barged_in():
                    # The provider stopped the reply because the user spoke: LiveKit must
                    # stop playing it, as it does on a reported speech start.
                    self._speech_reported = True
                    self.emit("input_speech_started", llm.InputSpeechStartedEvent())
                self._end_generation(cancelled=cut)
            case Reconnected():
                # A cut-off reply was ended (ReplyEnded) before this; LiveKit carries on.
                self.emit("session_reconnected", llm.RealtimeSessionReconnectedEvent())
            case ProviderNotice():
                error = llm.RealtimeError(event.message, code=event.code)
                self._emit_error(error, recoverable=True)
            case SessionEnded(reason="failed"):
                self._fatal(RuntimeError(event.error or "the antiphon session failed"))
            case SessionEnded() | UserTranscript() | ToolCallFinished():
                pass

    def _barged_in(self) -> bool:
        """A reply cut neither by LiveKit, nor by a lost connection, nor after a reported
        speech start: the provider heard the user over it."""
        session = self._session
        return (
            not self._speech_seen
            and not self._interrupting
            and session is not None
            and session.state.connected
        )

    def _speech_stopped(self) -> None:
        self._speech_reported = False
        enabled = self._model.capabilities.user_transcription
        self.emit(
            "input_speech_stopped",
            llm.InputSpeechStoppedEvent(user_transcription_enabled=enabled),
        )

    def _start_generation(self, generation_id: str) -> _Generation:
        self._end_generation(cancelled=True)
        text: utils.aio.Chan[str] = utils.aio.Chan()
        audio: utils.aio.Chan[rtc.AudioFrame] = utils.aio.Chan()
        messages: utils.aio.Chan[llm.MessageGeneration] = utils.aio.Chan()
        functions: utils.aio.Chan[llm.FunctionCall] = utils.aio.Chan()
        modalities: asyncio.Future[list[Literal["text", "audio"]]] = (
            asyncio.get_running_loop().create_future()
        )
        modalities.set_result(["audio", "text"])
        if not generation_id.startswith("calls-"):
            messages.send_nowait(
                llm.MessageGeneration(
                    message_id=generation_id,
                    text_stream=text,
                    audio_stream=audio,
                    modalities=modalities,
                )
            )
            self._last_message_id = generation_id
        reply = self._next_reply()
        created = llm.GenerationCreatedEvent(
            message_stream=messages,
            function_stream=functions,
            user_initiated=reply is not None,
            response_id=generation_id,
        )
        usage = self._session.state.usage if self._session is not None else None
        self._generation = _Generation(
            event=created,
            text=text,
            audio=audio,
            messages=messages,
            functions=functions,
            started_at=time.time(),
            input_tokens=usage.input_tokens if usage else 0,
            output_tokens=usage.output_tokens if usage else 0,
        )
        if reply is not None:
            reply.set_result(created)
        self.emit("generation_created", created)
        return self._generation

    def _next_reply(self) -> asyncio.Future[llm.GenerationCreatedEvent] | None:
        while self._replies:
            future = self._replies.popleft()
            if not future.done():
                return future
        return None

    def _end_generation(self, *, cancelled: bool) -> None:
        gen, self._generation = self._generation, None
        if gen is None:
            return
        gen.close()
        now = time.time()
        usage = self._session.state.usage if self._session is not None else None
        input_tokens = (usage.input_tokens if usage else 0) - gen.input_tokens
        output_tokens = (usage.output_tokens if usage else 0) - gen.output_tokens
        duration = now - gen.started_at
        self.emit(
            "metrics_collected",
            RealtimeModelMetrics(
                label=self._model.label,
                request_id=gen.event.response_id or "",
                timestamp=gen.started_at,
                duration=duration,
                ttft=-1 if gen.first_audio_at is None else gen.first_audio_at - gen.started_at,
                cancelled=cancelled,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                total_tokens=input_tokens + output_tokens,
                tokens_per_second=output_tokens / duration if duration > 0 else 0.0,
                input_token_details=RealtimeModelMetrics.InputTokenDetails(),
                output_token_details=RealtimeModelMetrics.OutputTokenDetails(),
            ),
        )

    def _emit_error(self, error: Exception, *, recoverable: bool) -> None:
        self.emit(
            "error",
            llm.RealtimeModelError(
                timestamp=time.time(),
                label=self._model.label,
                error=error,
                recoverable=recoverable,
            ),
        )

    def _fatal(self, error: Exception) -> None:
        if self.antiphon_error is None:
            self.antiphon_error = error
            self._emit_error(error, recoverable=False)


def _submit_outputs(session: Session, items: list[llm.ChatItem]) -> tuple[list[str], set[str]]:
    """Submit the outputs in ``items`` of calls that wait for theirs. Returns why others were
    refused (they answer no call in ``items`` or in antiphon's history, or a call that has
    another output already) and the ids of those refused outputs."""
    state = session.state
    answered = {i.id: i.output for i in state.items if isinstance(i, FunctionOutput)}
    calls = {i.id for i in state.items if isinstance(i, FunctionCall)}
    calls.update(i.call_id for i in items if isinstance(i, llm.FunctionCall))
    refused: list[str] = []
    dropped: set[str] = set()
    for item in items:
        if not isinstance(item, llm.FunctionCallOutput):
            continue
        if answered.get(item.call_id, item.output) != item.output:
            refused.append(f"tool call {item.call_id!r} already has its output")
            dropped.add(item.id)
            continue
        call = state.pending_tool(item.call_id)
        if call is not None and call.status is not ToolCallStatus.FINISHED:
            outcome = ToolOutcome.ERROR if item.is_error else ToolOutcome.OK
            try:
                session.submit_tool_result(item.call_id, item.output, outcome=outcome)
            except AntiphonError as exc:  # the session ended, ...
                refused.append(str(exc))
                dropped.add(item.id)
        elif item.call_id not in calls:
            refused.append(f"no tool call {item.call_id!r} to answer")
            dropped.add(item.id)
    return refused, dropped


def _conversational(item: llm.ChatItem) -> bool:
    """An item antiphon's conversation can hold (not LiveKit's instructions, handoffs or
    configuration records)."""
    if isinstance(item, llm.ChatMessage):
        return item.role in ("user", "assistant")
    return isinstance(item, llm.FunctionCall | llm.FunctionCallOutput)


def _empty(item: llm.ChatItem) -> bool:
    return isinstance(item, llm.ChatMessage) and not (item.text_content or "").strip()


def _aligned(theirs: list[llm.ChatItem], ours: list[llm.ChatItem]) -> list[llm.ChatItem]:
    """LiveKit's items, each under antiphon's id where both hold the same item: a tool call
    or output by its call id; a message LiveKit made itself (of a reply, or of typed text)
    by its role and text, matched in order (a reply's text may be what was heard of it)."""
    held = {item.id for item in ours}
    calls = {i.call_id: i.id for i in ours if isinstance(i, llm.FunctionCall)}
    outputs = {i.call_id: i.id for i in ours if isinstance(i, llm.FunctionCallOutput)}
    claimed = {item.id for item in theirs if item.id in held}
    free = [i for i in ours if isinstance(i, llm.ChatMessage) and i.id not in claimed]
    aligned: list[llm.ChatItem] = []
    for item in theirs:
        our_id: str | None = None
        if item.id in held:
            pass
        elif isinstance(item, llm.FunctionCall):
            our_id = calls.get(item.call_id)
        elif isinstance(item, llm.FunctionCallOutput):
            our_id = outputs.get(item.call_id)
        elif isinstance(item, llm.ChatMessage):
            match = next((m for m in free if _same_message(m, item)), None)
            if match is not None:
                free.remove(match)
                our_id = match.id
        aligned.append(item if our_id is None else item.model_copy(update={"id": our_id}))
    return aligned


def _same_message(ours: llm.ChatItem, theirs: llm.ChatMessage) -> bool:
    if not isinstance(ours, llm.ChatMessage) or ours.role != theirs.role:
        return False
    mine, said = (ours.text_content or "").strip(), (theirs.text_content or "").strip()
    if not said:
        return False
    # LiveKit keeps what was heard of a reply: a prefix of what antiphon holds.
    return mine.startswith(said) if theirs.role == "assistant" else mine == said


def _antiphon_item(item: llm.ChatItem) -> Item | None:
    """A LiveKit item as an item of antiphon's conversation."""
    if isinstance(item, llm.ChatMessage):
        text = item.text_content or ""
        if item.role == "user":
            return UserMessage(id=item.id, text=text)
        return AssistantMessage(id=item.id, text=text, interrupted=item.interrupted)
    if isinstance(item, llm.FunctionCall):
        return FunctionCall(id=item.call_id, name=item.name, arguments=item.arguments)
    if isinstance(item, llm.FunctionCallOutput):
        outcome = ToolOutcome.ERROR if item.is_error else ToolOutcome.OK
        return FunctionOutput(id=item.call_id, name=item.name, output=item.output, outcome=outcome)
    return None


def _tool_choice(choice: llm.ToolChoice) -> str:
    """LiveKit's tool choice as antiphon's: a mode, or the name of the tool to call."""
    if isinstance(choice, str):
        return choice
    return choice["function"]["name"]


def _user_text(text: str) -> _Command:
    return lambda s: s.send_text(text, generate_reply=False)


def _tool_spec(schema: dict[str, Any]) -> ToolSpec:
    fn = schema.get("function", schema)
    return ToolSpec(
        name=fn["name"],
        description=fn.get("description") or "",
        parameters=fn.get("parameters") or {"type": "object", "properties": {}},
    )


def _chat_item(
    item: UserMessage | AssistantMessage | FunctionCall | FunctionOutput,
) -> llm.ChatItem:
    match item:
        case UserMessage():
            return llm.ChatMessage(id=item.id, role="user", content=[item.text])
        case AssistantMessage():
            return llm.ChatMessage(
                id=item.id, role="assistant", content=[item.text], interrupted=item.interrupted
            )
        case FunctionCall():
            return llm.FunctionCall(
                id=item.id, call_id=item.id, name=item.name, arguments=item.arguments
            )
        case FunctionOutput():
            return llm.FunctionCallOutput(
                id=f"{item.id}/output",
                call_id=item.id,
                name=item.name,
                output=item.output,
                is_error=item.outcome is not ToolOutcome.OK,
            )
