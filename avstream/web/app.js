// avstream dashboard: one WebSocket to the dashboard server, which sends the selected stream's
// newest update (JSON, then "H" + float32 heatmap and, with a camera, "O" + JPEG).
"use strict";
const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.search).get("token");
const ws = new WebSocket(`ws://${location.host}/` + (token ? `?token=${encodeURIComponent(token)}` : ""));
ws.binaryType = "arraybuffer";
let header = null, current = null, history = [], frames = 0, rate = 0, lastRateAt = performance.now();
window.avstream = { updates: 0, lastHeader: null };  // for tests and the curious

function turbo(x) {  // a perceptual blue-green-yellow-red ramp, x in 0..1
  const r = 34.61 + x * (1172.33 - x * (10793.56 - x * (33300.12 - x * (38394.49 - x * 14825.05))));
  const g = 23.31 + x * (557.33 + x * (1225.33 - x * (3574.96 - x * (1073.77 + x * 707.56))));
  const b = 27.2 + x * (3211.1 - x * (15327.97 - x * (27814 - x * (22569.18 - x * 6838.66))));
  return [r, g, b].map((v) => Math.max(0, Math.min(255, v)));
}

// the page shares the robot's (or the laptop's) cores with the run: each update costs it little.
// The ramp is a table, the 60 s plot is redrawn 4 times a second (it moves 8 pixels a second).
const RAMP = new Uint8ClampedArray(256 * 4);
for (let k = 0; k < 256; k++) { RAMP.set(turbo(k / 255), 4 * k); RAMP[4 * k + 3] = 255; }
const PLOT_EVERY_MS = 250;
let plottedAt = 0;

function drawHeat(buf) {
  const [rows, cols] = header.shape;
  const v = new Float32Array(buf.slice(1, 1 + 4 * rows * cols));  // past the 1-byte kind: copy to align
  const c = $("heat");
  if (c.width !== cols || c.height !== rows) { c.width = cols; c.height = rows; }
  const ctx = c.getContext("2d"), img = ctx.createImageData(cols, rows), px = new Uint32Array(img.data.buffer);
  const ramp = new Uint32Array(RAMP.buffer);
  let max = 1e-9;
  for (let i = 0; i < v.length; i++) max = Math.max(max, v[i]);
  for (let i = 0; i < v.length; i++) px[i] = ramp[Math.round(255 * Math.max(0, v[i]) / max)];
  ctx.putImageData(img, 0, 0);
}

function drawSources() {
  const rows = (header.tracks && header.tracks.length ? header.tracks.map((t) => ["#" + t.id, t])
    : header.sources.map((s, k) => ["peak " + (k + 1), s]));
  $("sources").tBodies[0].innerHTML = rows.map(([name, s]) =>
    `<tr class="source"><td>${name}</td><td>${s.azimuth_deg.toFixed(1)}</td><td>${s.elevation_deg.toFixed(1)}</td>` +
    `<td>${s.power.toFixed(2)}</td></tr>`).join("");
}

function drawMeters() {
  const lv = header.levels;
  if (!lv) return;
  const box = $("meters");
  if (box.children.length !== lv.rms_dbfs.length) {
    box.innerHTML = lv.rms_dbfs.map((_, k) => `<div class="meter" title="channel ${k}"></div>`).join("");
  }
  lv.rms_dbfs.forEach((db, k) => {
    const m = box.children[k];
    m.style.height = Math.max(2, 80 * (1 + db / 80)) + "px";
    m.className = "meter" + (lv.peak_dbfs[k] >= -0.1 ? " clip" : db < -75 ? " dead" : "");
    m.dataset.db = db;
  });
}

function drawPlot() {
  const c = $("plot"), ctx = c.getContext("2d"), now = header.t;
  while (history.length && now - history[0].t > 60) history.shift();
  const wall = performance.now();
  if (wall - plottedAt < PLOT_EVERY_MS) return;
  plottedAt = wall;
  ctx.fillStyle = "#000"; ctx.fillRect(0, 0, c.width, c.height);
  ctx.fillStyle = "#888"; ctx.fillText("azimuth (dots) and elevation (squares), last 60 s", 6, 12);
  for (const h of history) {
    const x = c.width * (1 - (now - h.t) / 60);
    for (const s of h.points) {
      ctx.fillStyle = s.color;
      ctx.fillRect(x, c.height * (0.5 - s.azimuth_deg / 360), 2, 2);
      ctx.fillRect(x, c.height * (0.5 - s.elevation_deg / 180), 3, 3);
    }
  }
}

function drawStatus() {
  const st = header.status || {};
  $("status").textContent = `${rate.toFixed(1)} updates/s  latency ${((st.latency_s || 0) * 1000).toFixed(0)} ms  ` +
    `dropped ${st.dropped_blocks ?? 0}  device ${st.device ?? "?"} (${st.device_state ?? "?"})` +
    (st.camera_state ? `  camera ${st.camera_state}` : "") + (header.flags.length ? "  flags " + header.flags.join(",") : "");
}

ws.onmessage = (ev) => {
  if (typeof ev.data === "string") {
    const msg = JSON.parse(ev.data);
    if (msg.op === "streams") {
      $("stream").innerHTML = msg.streams.map((s) => `<option>${s}</option>`).join("");
      current = msg.streams[0];
    } else if (msg.op === "update" && msg.stream === current) {
      header = msg.header; window.avstream.lastHeader = header; window.avstream.updates++;
      window.avstream.stream = msg.stream;
      $("stale").textContent = "";
      const pts = (header.tracks && header.tracks.length ? header.tracks : header.sources.map((s, k) => ({...s, id: k})));
      history.push({ t: header.t, points: pts.map((s) => ({ azimuth_deg: s.azimuth_deg, elevation_deg: s.elevation_deg,
                                                            color: `hsl(${(s.id * 67) % 360}, 80%, 60%)` })) });
      frames++;
      const now = performance.now();
      if (now - lastRateAt >= 1000) { rate = frames * 1000 / (now - lastRateAt); frames = 0; lastRateAt = now; }
      drawSources(); drawMeters(); drawPlot(); drawStatus();
    } else if (msg.op === "stale" && msg.stream === current) {
      $("stale").textContent = (msg.since ? "no data since " + new Date(msg.since * 1000).toLocaleTimeString()
        : "no data yet from " + msg.stream) +
        (msg.not_avstream ? ` (${msg.not_avstream} messages that are not an avstream stream)` : "");
    }
  } else if (header) {
    const kind = new Uint8Array(ev.data, 0, 1)[0];
    if (kind === 72) drawHeat(ev.data);  // "H"
    else if (kind === 79) {  // "O": the overlay picture, JPEG
      const url = URL.createObjectURL(new Blob([new Uint8Array(ev.data, 1)], { type: "image/jpeg" }));
      const img = $("overlay"), old = img.src;
      img.src = url;
      if (old) URL.revokeObjectURL(old);
    }
  }
};
ws.onclose = () => { $("stale").textContent = "dashboard server gone"; };
$("stream").onchange = (e) => {
  current = e.target.value; header = null; history = [];
  ws.send(JSON.stringify({ select: current }));
};
