// islr serve page: camera frames -> WebSocket -> skeleton + live top-3; video upload -> top-5 + timeline.
// Plain JavaScript, no build step, nothing loaded from elsewhere. State is kept on window.islr for tests.
"use strict";

const $ = (id) => document.getElementById(id);
const PALETTE = ["#1a73e8", "#e8710a", "#188038", "#a142f4", "#d93025", "#12b5cb", "#f9ab00", "#9334e6", "#5f6368", "#e52592"];
const COLOURS = { pose: "#d0d4dc", left_hand: "#ffa000", right_hand: "#00a0ff" };

const live = {
  cfg: null, stream: null, ws: null, timer: null, ready: false,
  nextId: 1, inFlight: new Map(), frames: new Map(), sent: 0, answered: 0, skipped: 0, dropped: 0,
  drawn: 0, predictions: 0, counts: {}, top: [], sign: null, latencies: [], errors: 0,
};
const upload = { result: null, error: null, busy: false };
window.islr = { live, upload };

function setStatus(el, text, isError = false) {
  el.textContent = text;
  el.classList.toggle("error", isError);
}

function signColour(sign) {
  const index = live.cfg ? live.cfg.signs.indexOf(sign) : -1;
  return PALETTE[(index < 0 ? 0 : index) % PALETTE.length];
}

function renderScores(list, top, acceptedSign) {
  list.replaceChildren(...top.map((entry, rank) => {
    const li = document.createElement("li");
    if (rank === 0 && acceptedSign) li.classList.add("accepted");
    const name = document.createElement("span");
    name.className = "sign";
    name.textContent = entry.sign;
    const bar = document.createElement("span");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.style.width = `${Math.max(0, Math.min(1, entry.score)) * 100}%`;
    bar.append(fill);
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = entry.score.toFixed(3);
    li.append(name, bar, score);
    return li;
  }));
}

// -- camera ---------------------------------------------------------------------------------------
const video = $("video");
const overlay = $("overlay");

async function startCamera() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setStatus($("camera-status"), "this browser gives no camera here (open the page at http://127.0.0.1 or over https)", true);
    return;
  }
  $("camera-start").disabled = true;
  try {
    live.stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
  } catch (err) {
    setStatus($("camera-status"), `camera not available: ${err.message || err.name}`, true);
    $("camera-start").disabled = false;
    return;
  }
  video.srcObject = live.stream;
  await video.play();
  $("camera-stop").disabled = false;
  $("camera-reset").disabled = false;
  setStatus($("camera-status"), "connecting...");
  openSocket();
}

function stopCamera() {
  clearInterval(live.timer);
  live.timer = null;
  live.ready = false;
  if (live.ws) live.ws.close();
  live.ws = null;
  if (live.stream) live.stream.getTracks().forEach((t) => t.stop());
  live.stream = null;
  live.inFlight.clear();
  live.frames.clear();
  overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);
  $("camera-start").disabled = false;
  $("camera-stop").disabled = true;
  $("camera-reset").disabled = true;
  setStatus($("camera-status"), "camera off");
}

function openSocket() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws/live`);
  ws.binaryType = "arraybuffer";
  live.ws = ws;
  ws.onmessage = (event) => onMessage(JSON.parse(event.data));
  ws.onclose = () => {
    if (live.ws === ws) {
      live.ready = false;
      clearInterval(live.timer);
      if (!$("camera-status").classList.contains("error")) setStatus($("camera-status"), "connection closed", true);
    }
  };
}

function onMessage(msg) {
  if (msg.type === "ready") {
    live.ready = true;
    setStatus($("camera-status"), `streaming at up to ${live.cfg.fps} frames/s`);
    live.timer = setInterval(sendFrame, 1000 / live.cfg.fps);
    return;
  }
  if (msg.type === "error" && msg.id === undefined) {
    setStatus($("camera-status"), msg.error, true);
    return;
  }
  for (const id of msg.dropped_ids || []) { live.inFlight.delete(id); live.frames.delete(id); }
  const sentAt = live.inFlight.get(msg.id);
  const frame = live.frames.get(msg.id);
  live.inFlight.delete(msg.id);
  live.frames.delete(msg.id);
  live.dropped += (msg.dropped_ids || []).length;
  if (msg.type === "error") {
    live.errors += 1;
    setStatus($("camera-status"), msg.error, true);
    return;
  }
  live.answered += 1;
  if (sentAt !== undefined) {
    live.latencies.push(performance.now() - sentAt);
    if (live.latencies.length > 60) live.latencies.shift();
  }
  drawOverlay(msg, frame);
  live.top = msg.top;
  live.sign = msg.sign;
  if (msg.top.length) {
    live.predictions += 1;
    live.counts[msg.top[0].sign] = (live.counts[msg.top[0].sign] || 0) + 1;
    renderScores($("live-top"), msg.top, msg.sign);
    setStatus($("camera-status"), msg.sign ? `recognised: ${msg.sign}` : "not sure");
  } else {
    $("live-top").replaceChildren();
    setStatus($("camera-status"), `waiting for hands ${msg.hand_frames}/${live.cfg.min_hand_frames}`);
  }
  const sorted = [...live.latencies].sort((a, b) => a - b);
  const median = sorted.length ? sorted[Math.floor(sorted.length / 2)] : 0;
  $("live-stats").textContent = `sent ${live.sent}, answered ${live.answered}, skipped at camera ${live.skipped}, ` +
    `dropped by server ${live.dropped}, drawn ${live.drawn}, latency median ${median.toFixed(0)} ms ` +
    `(server ${msg.server_ms} ms), window ${msg.window_frames} frames`;
}

function sendFrame() {
  if (!live.ready || !live.ws || live.ws.readyState !== WebSocket.OPEN || video.readyState < 2 || !video.videoWidth) return;
  if (live.inFlight.size >= live.cfg.max_in_flight) {  // the server is busy: skip this frame rather than queue it
    live.skipped += 1;
    return;
  }
  const width = Math.min(live.cfg.jpeg_width, video.videoWidth);
  const height = Math.round(video.videoHeight * width / video.videoWidth);
  const grab = document.createElement("canvas");  // kept until answered: the skeleton is drawn on this very frame
  grab.width = width;
  grab.height = height;
  grab.getContext("2d").drawImage(video, 0, 0, width, height);  // as the camera gives it: never mirrored
  const id = live.nextId++ >>> 0;
  live.inFlight.set(id, performance.now());
  live.frames.set(id, grab);
  grab.toBlob(async (blob) => {
    if (!blob || !live.ws || live.ws.readyState !== WebSocket.OPEN) { live.inFlight.delete(id); live.frames.delete(id); return; }
    const body = new Uint8Array(await blob.arrayBuffer());
    const message = new Uint8Array(4 + body.length);
    new DataView(message.buffer).setUint32(0, id);
    message.set(body, 4);
    live.ws.send(message);
    live.sent += 1;
  }, "image/jpeg", live.cfg.jpeg_quality);
}

function drawPart(ctx, points, bones, colour, w, h) {
  if (!points) return 0;
  ctx.strokeStyle = colour;
  ctx.fillStyle = colour;
  ctx.lineWidth = Math.max(2, w / 320);
  for (const [a, b] of bones) {
    if (a >= points.length || b >= points.length || !points[a] || !points[b]) continue;
    ctx.beginPath();
    ctx.moveTo(points[a][0] * w, points[a][1] * h);
    ctx.lineTo(points[b][0] * w, points[b][1] * h);
    ctx.stroke();
  }
  let drawn = 0;
  for (const p of points) {
    if (!p) continue;
    ctx.beginPath();
    ctx.arc(p[0] * w, p[1] * h, Math.max(2.5, w / 250), 0, 2 * Math.PI);
    ctx.fill();
    drawn += 1;
  }
  return drawn;
}

// The answered frame itself goes under its skeleton, so the two match even when the answer comes
// late (the live video keeps playing underneath until the first answer).
function drawOverlay(msg, frame) {
  const w = frame ? frame.width : msg.width;
  const h = frame ? frame.height : msg.height;
  if (overlay.width !== w || overlay.height !== h) { overlay.width = w; overlay.height = h; }
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, w, h);
  if (frame) ctx.drawImage(frame, 0, 0, w, h);
  const marks = msg.landmarks;
  let points = drawPart(ctx, marks.pose, live.cfg.pose_bones, COLOURS.pose, w, h);
  points += drawPart(ctx, marks.left_hand, live.cfg.hand_bones, COLOURS.left_hand, w, h);
  points += drawPart(ctx, marks.right_hand, live.cfg.hand_bones, COLOURS.right_hand, w, h);
  if (points > 0) {
    live.drawn += 1;
    overlay.dataset.drawn = String(live.drawn);
  }
}

// -- upload ---------------------------------------------------------------------------------------
async function sendUpload(event) {
  event.preventDefault();
  const file = $("upload-file").files[0];
  if (!file) { setStatus($("upload-status"), "choose a video file first", true); return; }
  if (file.size > live.cfg.max_upload_mb * 1048576) {
    setStatus($("upload-status"), `${file.name} is larger than the ${live.cfg.max_upload_mb} MB limit`, true);
    return;
  }
  upload.busy = true;
  upload.result = null;
  upload.error = null;
  $("upload-button").disabled = true;
  $("upload-top").replaceChildren();
  $("timeline").replaceChildren();
  $("timeline-legend").replaceChildren();
  setStatus($("upload-status"), `recognising ${file.name}...`);
  const form = new FormData();
  form.append("file", file);
  try {
    const response = await fetch("/api/predict", { method: "POST", body: form });
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
    upload.result = data;
    showUpload(data);
  } catch (err) {
    upload.error = err.message;
    setStatus($("upload-status"), err.message, true);
  } finally {
    upload.busy = false;
    $("upload-button").disabled = false;
  }
}

function showUpload(data) {
  renderScores($("upload-top"), data.top, data.top.length && data.top[0].score >= live.cfg.threshold ? data.top[0].sign : null);
  setStatus($("upload-status"), `${data.file}: ${data.frames} frames, ${data.hand_frames} with hands, ` +
    `${data.windows.length} windows${data.truncated ? " (cut at the frame limit)" : ""}`);
  const cells = data.windows.map((w) => {
    const cell = document.createElement("span");
    cell.style.background = signColour(w.top[0].sign);
    if (!w.sign) cell.classList.add("unsure");
    cell.title = `${w.time_s.toFixed(2)} s (frame ${w.frame}): ${w.top[0].sign} ${w.top[0].score.toFixed(3)}`;
    return cell;
  });
  $("timeline").replaceChildren(...cells);
  const seen = [...new Set(data.windows.map((w) => w.top[0].sign))];
  $("timeline-legend").replaceChildren(...seen.map((sign) => {
    const item = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = signColour(sign);
    item.append(swatch, sign);
    return item;
  }));
}

// -- start ------------------------------------------------------------------------------------------
async function init() {
  try {
    live.cfg = await (await fetch("/api/config")).json();
  } catch (err) {
    setStatus($("model-info"), `cannot reach the server: ${err.message}`, true);
    return;
  }
  $("model-info").textContent = `${live.cfg.model} (${live.cfg.family}), ${live.cfg.signs.length} signs; ` +
    `window ${live.cfg.window} frames, needs ${live.cfg.min_hand_frames} with hands, accepts at ${live.cfg.threshold}`;
  $("camera-start").addEventListener("click", startCamera);
  $("camera-stop").addEventListener("click", stopCamera);
  $("camera-reset").addEventListener("click", () => live.ws && live.ws.send(JSON.stringify({ type: "reset" })));
  $("mirror-preview").addEventListener("change", (e) => $("stage").classList.toggle("mirrored", e.target.checked));
  $("stage").classList.toggle("mirrored", $("mirror-preview").checked);
  $("upload-form").addEventListener("submit", sendUpload);
  document.body.dataset.ready = "1";
}

init();
