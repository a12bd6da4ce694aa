// antiphon call viewer: draws one session's CallView (GET /api/sessions/{id}) as lanes on one
// time axis, the transcript, both audio sides with their waveforms, and the JSON of any record
// clicked. Times are milliseconds from the session's first record.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const LANE = 44;
const AXIS = 24;
const LANES = ["user", "assistant", "tools", "connection"];
const STREAMS = ["user", "assistant"];

const ui = {
  view: null,
  session: "",
  pxPerMs: 1,
  fitted: true,
  playing: null,
  errors: [],
};
window.viewerErrors = ui.errors;
window.addEventListener("error", (e) => ui.errors.push(String(e.message || e)));
window.addEventListener("unhandledrejection", (e) => ui.errors.push(String(e.reason)));

const $ = (id) => document.getElementById(id);

function el(tag, attrs, parent) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function html(tag, attrs, text, parent) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined && text !== null) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

function fmtMs(ms) {
  if (ms >= 60000) {
    const m = Math.floor(ms / 60000);
    return `${m}:${((ms % 60000) / 1000).toFixed(1).padStart(4, "0")}`;
  }
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`;
}

async function getJSON(url) {
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `${response.status} ${url}`);
  return body;
}

// --- sessions ---------------------------------------------------------------------------

async function loadSessions() {
  const data = await getJSON("/api/sessions");
  $("journal-path").textContent = data.journal;
  const list = $("session-list");
  list.textContent = "";
  for (const s of data.sessions) {
    const li = html("li", {}, null, list);
    const a = html("a", { href: `?session=${encodeURIComponent(s.session_id)}` }, s.session_id, li);
    a.dataset.session = s.session_id;
    const when = s.started_wall_ns ? new Date(s.started_wall_ns / 1e6).toLocaleString() : "";
    html("small", {}, [s.provider, s.model, when].filter(Boolean).join(" · "), a);
    a.addEventListener("click", (ev) => {
      ev.preventDefault();
      history.pushState(null, "", a.getAttribute("href"));
      loadSession(s.session_id);
    });
  }
  const wanted = new URLSearchParams(location.search).get("session");
  const known = data.sessions.map((s) => s.session_id);
  const first = known.includes(wanted) ? wanted : data.initial;
  if (first) await loadSession(first);
  else document.body.dataset.ready = "1";
}

async function loadSession(id) {
  document.body.dataset.ready = "0";
  ui.session = id;
  for (const a of document.querySelectorAll("#session-list a")) {
    a.classList.toggle("current", a.dataset.session === id);
  }
  stopAudio();
  const view = await getJSON(`/api/sessions/${encodeURIComponent(id)}`);
  ui.view = view;
  document.body.dataset.session = id;
  $("session-title").textContent = [id, view.provider, view.model].filter(Boolean).join("  ·  ");
  const c = view.counts;
  $("count-turns").textContent = c.turns;
  $("count-generations").textContent = c.generations;
  $("count-tools").textContent = c.tool_calls;
  $("count-reconnects").textContent = c.reconnects;
  $("count-records").textContent = c.records;
  $("damage").hidden = !view.damage;
  $("damage").textContent = view.damage ? `The journal is damaged; shown up to: ${view.damage}` : "";
  $("json").textContent = "Click anything on the timeline or in the transcript to see its records.";
  $("details-title").textContent = "";
  fit();
  renderTranscript();
  setupAudio();
  document.body.dataset.ready = "1";
}

// --- timeline ---------------------------------------------------------------------------

function span() {
  const v = ui.view;
  let end = v.duration_ms;
  for (const track of v.audio) for (const r of track.runs) end = Math.max(end, r.t1_ms);
  return Math.max(end, 1);
}

function fit() {
  const width = $("lanes-scroll").clientWidth || 800;
  ui.pxPerMs = Math.max(width - 24, 100) / span();
  ui.fitted = true;
  renderLanes();
}

function zoom(factor) {
  const scroll = $("lanes-scroll");
  const centre = (scroll.scrollLeft + scroll.clientWidth / 2) / ui.pxPerMs;
  ui.pxPerMs *= factor;
  ui.fitted = false;
  renderLanes();
  scroll.scrollLeft = centre * ui.pxPerMs - scroll.clientWidth / 2;
}

function x(ms) {
  return 10 + ms * ui.pxPerMs;
}

function laneY(name) {
  return AXIS + LANES.indexOf(name) * LANE;
}

function niceStep(ms) {
  const steps = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 15000, 30000,
    60000, 120000, 300000, 600000, 1800000, 3600000];
  return steps.find((s) => s * ui.pxPerMs >= 80) || steps[steps.length - 1];
}

function bar(svg, lane, cls, t0, t1, row, rows, attrs) {
  const pad = 5;
  const h = (LANE - 2 * pad) / rows;
  const w = Math.max(x(t1) - x(t0), 3);
  return el("rect", {
    class: cls, x: x(t0), y: laneY(lane) + pad + row * h, width: w, height: Math.max(h - 1, 2),
    rx: 2, ...(attrs || {}),
  }, svg);
}

function titled(node, text) {
  el("title", {}, node).textContent = text;
  return node;
}

function clickable(node, seqs, t, label) {
  node.classList.add("item");
  node.dataset.seqs = seqs.filter((s) => s >= 0).join(",");
  node.addEventListener("click", (ev) => {
    ev.stopPropagation();
    for (const s of document.querySelectorAll("#lanes .selected")) s.classList.remove("selected");
    node.classList.add("selected");
    showRecords(seqs, label);
    seek(t);
  });
  return node;
}

function renderLanes() {
  const v = ui.view;
  const svg = $("lanes");
  svg.textContent = "";
  const width = Math.ceil(x(span()) + 10);
  const height = AXIS + LANES.length * LANE;
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  el("rect", { class: "lane-bg", x: 0, y: 0, width, height }, svg);
  const step = niceStep();
  for (let t = 0; t <= span(); t += step) {
    const g = el("g", { class: "tick" }, svg);
    el("line", { x1: x(t), x2: x(t), y1: AXIS - 6, y2: height }, g);
    el("text", { x: x(t) + 2, y: 12 }, g).textContent = fmtMs(t);
  }
  LANES.forEach((_, i) => el("line", {
    class: "lane-sep", x1: 0, x2: width, y1: AXIS + i * LANE, y2: AXIS + i * LANE,
  }, svg));

  // User: the audio sent (faint), what voice detection heard, typed text.
  for (const track of v.audio) {
    const lane = track.stream === "user" ? "user" : "assistant";
    for (const r of track.runs) {
      titled(bar(svg, lane, `audio-run ${track.stream}`, r.t0_ms, r.t1_ms, 0, 1),
        `${track.stream} audio ${fmtMs(r.a0_ms)}–${fmtMs(r.a1_ms)} of the stream`);
    }
  }
  for (const s of v.speech) {
    const node = bar(svg, "user", `speech${s.open ? " open" : ""}`, s.start_ms, s.end_ms, 0, 1);
    titled(clickable(node, s.seqs, s.start_ms, `speech ${s.item_id}`),
      `user speech ${s.item_id} ${fmtMs(s.end_ms - s.start_ms)}${s.open ? " (no stop)" : ""}`);
  }
  for (const m of v.markers.filter((m) => m.kind === "user.text")) {
    const node = el("circle", { class: "user-text", cx: x(m.t_ms), cy: laneY("user") + LANE / 2, r: 5 }, svg);
    titled(clickable(node, [m.seq], m.t_ms, m.kind), m.label);
  }

  // Assistant: one bar per generation, coloured by how it ended.
  for (const g of v.generations) {
    const node = bar(svg, "assistant", `gen reason-${g.reason}`, g.start_ms, g.end_ms, 0, 1);
    node.dataset.generation = g.generation_id;
    titled(clickable(node, g.seqs, g.start_ms, `generation ${g.generation_id}`),
      `${g.generation_id} ${g.reason}, ${fmtMs(g.audio_ms)} audio\n${g.text}`);
    if (x(g.end_ms) - x(g.start_ms) > 60) {
      el("text", { x: x(g.start_ms) + 3, y: laneY("assistant") + LANE / 2 + 3 }, svg)
        .textContent = g.text.slice(0, Math.floor((x(g.end_ms) - x(g.start_ms)) / 6));
    }
  }

  // Tools: a bar from request to delivery, a tick per phase.
  const rows = Math.max(1, Math.min(3, v.tools.length));
  v.tools.forEach((c, i) => {
    const row = i % rows;
    const node = bar(svg, "tools", "tool", c.start_ms, c.end_ms, row, rows);
    node.dataset.call = c.call_id;
    titled(clickable(node, c.phases.map((p) => p.seq), c.start_ms, `tool call ${c.call_id}`),
      `${c.name}(${c.arguments}) → ${c.outcome || "no result"}: ${c.output}`);
    const h = (LANE - 10) / rows;
    for (const p of c.phases) {
      const tick = el("rect", {
        class: `phase phase-${p.phase}`, x: x(p.t_ms) - 2, y: laneY("tools") + 5 + row * h,
        width: 4, height: Math.max(h - 1, 2),
      }, svg);
      titled(clickable(tick, [p.seq], p.t_ms, `${p.phase} ${c.call_id}`),
        `${p.phase} ${c.name} [${c.call_id}] epoch ${p.epoch} at ${fmtMs(p.t_ms)}`);
    }
    el("text", { x: x(c.start_ms) + 6, y: laneY("tools") + 5 + row * h + h / 2 + 3 }, svg)
      .textContent = c.name;
  });

  // Connection: epochs, the gaps between them, point markers.
  for (const e of v.epochs) {
    const node = bar(svg, "connection", "epoch", e.start_ms, e.end_ms, 0, 1);
    node.dataset.epoch = e.epoch;
    titled(clickable(node, e.seqs, e.start_ms, `epoch ${e.epoch}`),
      `epoch ${e.epoch} ${e.provider_session_id}${e.resumed ? " (resumed)" : ""}: ended ${e.end} ${e.cause}`);
    el("text", { x: x(e.start_ms) + 3, y: laneY("connection") + 14 }, svg).textContent = `e${e.epoch}`;
  }
  for (const r of v.reconnects) {
    const cls = r.kind === "rotation" ? "reconnect rotation" : "reconnect gap";
    const node = bar(svg, "connection", cls, r.start_ms, r.end_ms, 0, 1);
    const gap = r.end_ms - r.start_ms;
    titled(clickable(node, r.seqs, r.start_ms, `reconnect to epoch ${r.epoch}`),
      `${r.kind} e${r.previous_epoch} → e${r.epoch}: ${r.cause}, gap ${fmtMs(gap)}`);
    el("text", { x: x(r.end_ms) + 3, y: laneY("connection") + LANE - 8 }, svg)
      .textContent = `${r.cause} · gap ${fmtMs(gap)}`;
  }
  for (const m of v.markers.filter((m) => m.kind !== "user.text")) {
    const cx = x(m.t_ms);
    const y = laneY("connection") + LANE - 4;
    const node = el("path", {
      class: `marker ${m.kind.replace(/\W/g, "-")}`, d: `M${cx - 4},${y} L${cx + 4},${y} L${cx},${y - 7} Z`,
    }, svg);
    titled(clickable(node, [m.seq], m.t_ms, m.kind), m.label);
  }
  ui.playhead = el("line", { class: "playhead", x1: x(0), x2: x(0), y1: AXIS - 4, y2: height }, svg);
}

function timeAt(ev) {
  const rect = $("lanes").getBoundingClientRect();
  return Math.max(0, (ev.clientX - rect.left - 10) / ui.pxPerMs);
}

// --- records ----------------------------------------------------------------------------

async function showRecords(seqs, label) {
  const wanted = seqs.filter((s) => s >= 0);
  $("details-title").textContent = label || "";
  if (!wanted.length) {
    $("json").textContent = "(no record)";
    return;
  }
  const url = `/api/sessions/${encodeURIComponent(ui.session)}/records?seq=${wanted.join(",")}`;
  const data = await getJSON(url);
  $("json").textContent = data.records.map((r) => JSON.stringify(r, null, 2)).join("\n\n");
}

// --- transcript -------------------------------------------------------------------------

function renderTranscript() {
  const list = $("transcript-list");
  list.textContent = "";
  const who = { user: "user", assistant: "assistant", tool_call: "tool call", tool_output: "tool result" };
  for (const entry of ui.view.transcript) {
    const li = html("li", { class: `entry ${entry.role}${entry.interrupted ? " interrupted" : ""}` }, null, list);
    html("span", { class: "when" }, fmtMs(entry.t_ms), li);
    html("div", { class: "who" }, who[entry.role] || entry.role, li);
    html("div", { class: "text" }, entry.text || "…", li);
    li.addEventListener("click", () => {
      showRecords([entry.seq], `${who[entry.role]} ${entry.item_id}`);
      seek(entry.t_ms);
    });
  }
}

// --- audio ------------------------------------------------------------------------------

function track(stream) {
  return ui.view.audio.find((t) => t.stream === stream);
}

// Call time -> stream time (ms), through the runs: where in its stream the audio journalled at
// that moment lies. Before a run starts: that run's start.
function streamTime(stream, t) {
  const runs = track(stream).runs;
  for (const r of runs) {
    if (t < r.t0_ms) return r.a0_ms;
    if (t <= r.t1_ms) {
      const f = r.t1_ms > r.t0_ms ? (t - r.t0_ms) / (r.t1_ms - r.t0_ms) : 0;
      return r.a0_ms + f * (r.a1_ms - r.a0_ms);
    }
  }
  return runs.length ? runs[runs.length - 1].a1_ms : 0;
}

function callTime(stream, a) {
  for (const r of track(stream).runs) {
    if (a >= r.a0_ms && a <= r.a1_ms) {
      const f = r.a1_ms > r.a0_ms ? (a - r.a0_ms) / (r.a1_ms - r.a0_ms) : 0;
      return r.t0_ms + f * (r.t1_ms - r.t0_ms);
    }
  }
  return null;
}

function seek(t) {
  $("cursor-time").textContent = `at ${fmtMs(t)}`;
  movePlayhead(t);
  for (const stream of STREAMS) {
    const audio = $(`audio-${stream}`);
    if (!track(stream).sample_rate) continue;
    const a = streamTime(stream, t) / 1000;
    if (Number.isFinite(a)) audio.currentTime = Math.min(a, track(stream).duration_ms / 1000);
    drawWave(stream);
  }
}

function movePlayhead(t) {
  if (!ui.playhead) return;
  ui.playhead.setAttribute("x1", x(t));
  ui.playhead.setAttribute("x2", x(t));
}

function stopAudio() {
  for (const stream of STREAMS) {
    const audio = $(`audio-${stream}`);
    audio.pause();
  }
}

function setupAudio() {
  for (const stream of STREAMS) {
    const audio = $(`audio-${stream}`);
    const button = $(`play-${stream}`);
    const t = track(stream);
    button.textContent = "▶";
    if (!t.sample_rate) {
      audio.removeAttribute("src");
      button.disabled = true;
      $(`time-${stream}`).textContent = "no audio";
    } else {
      button.disabled = false;
      audio.src = `/api/sessions/${encodeURIComponent(ui.session)}/audio/${stream}.wav`;
      audio.load();
      $(`time-${stream}`).textContent = `0.00 / ${(t.duration_ms / 1000).toFixed(2)} s`;
    }
    drawWave(stream);
  }
}

function drawWave(stream) {
  const canvas = $(`wave-${stream}`);
  const width = canvas.clientWidth || 600;
  canvas.width = width;
  const ctx = canvas.getContext("2d");
  const h = canvas.height;
  ctx.clearRect(0, 0, width, h);
  const t = ui.view && track(stream);
  if (!t || !t.peaks.length) return;
  const audio = $(`audio-${stream}`);
  const played = t.duration_ms ? (audio.currentTime * 1000) / t.duration_ms : 0;
  const colour = stream === "user" ? "#2f6fdb" : "#14946b";
  const n = t.peaks.length;
  for (let px = 0; px < width; px++) {
    const i0 = Math.floor((px / width) * n);
    const i1 = Math.max(i0 + 1, Math.floor(((px + 1) / width) * n));
    let peak = 0;
    for (let i = i0; i < i1 && i < n; i++) peak = Math.max(peak, t.peaks[i]);
    const y = Math.max(1, peak * (h / 2 - 2));
    ctx.fillStyle = px / width <= played ? colour : "#b9b9b4";
    ctx.fillRect(px, h / 2 - y, 1, 2 * y);
  }
  $(`time-${stream}`).textContent =
    `${audio.currentTime.toFixed(2)} / ${(t.duration_ms / 1000).toFixed(2)} s`;
}

function tick() {
  const stream = ui.playing;
  if (!stream) return;
  const audio = $(`audio-${stream}`);
  drawWave(stream);
  const t = callTime(stream, audio.currentTime * 1000);
  if (t !== null) movePlayhead(t);
  requestAnimationFrame(tick);
}

function bindAudio() {
  for (const stream of STREAMS) {
    const audio = $(`audio-${stream}`);
    const button = $(`play-${stream}`);
    button.addEventListener("click", () => {
      if (audio.paused) {
        for (const other of STREAMS) if (other !== stream) $(`audio-${other}`).pause();
        audio.play().catch((err) => ui.errors.push(`play ${stream}: ${err}`));
      } else {
        audio.pause();
      }
    });
    audio.addEventListener("play", () => {
      button.textContent = "❚❚";
      ui.playing = stream;
      requestAnimationFrame(tick);
    });
    audio.addEventListener("pause", () => {
      button.textContent = "▶";
      if (ui.playing === stream) ui.playing = null;
      drawWave(stream);
    });
    audio.addEventListener("ended", () => drawWave(stream));
    audio.addEventListener("error", () => {
      if (audio.getAttribute("src")) ui.errors.push(`audio ${stream}: ${audio.error && audio.error.message}`);
    });
    $(`wave-${stream}`).addEventListener("click", (ev) => {
      const t = track(stream);
      if (!t || !t.duration_ms) return;
      const rect = ev.target.getBoundingClientRect();
      audio.currentTime = ((ev.clientX - rect.left) / rect.width) * (t.duration_ms / 1000);
      drawWave(stream);
      const at = callTime(stream, audio.currentTime * 1000);
      if (at !== null) movePlayhead(at);
    });
  }
}

// --- start ------------------------------------------------------------------------------

function start() {
  $("zoom-in").addEventListener("click", () => zoom(2));
  $("zoom-out").addEventListener("click", () => zoom(0.5));
  $("zoom-fit").addEventListener("click", fit);
  $("lanes").addEventListener("click", (ev) => seek(timeAt(ev)));
  window.addEventListener("popstate", () => {
    const id = new URLSearchParams(location.search).get("session");
    if (id) loadSession(id);
  });
  // Refit when the timeline's width changes (window resized, a scrollbar came or went).
  new ResizeObserver(() => {
    if (!ui.view) return;
    if (ui.fitted) fit();
    STREAMS.forEach(drawWave);
  }).observe($("lanes-scroll"));
  bindAudio();
  loadSessions().catch((err) => {
    ui.errors.push(String(err));
    $("json").textContent = `Cannot load the journal: ${err.message}`;
    document.body.dataset.ready = "error";
  });
}

start();
