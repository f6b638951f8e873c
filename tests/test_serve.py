"""`islr serve`: the JSON API, the WebSocket sessions and the page in a real headless Chromium.

The model is a small transformer trained here on the genuine hello/thankyou files; the inputs are
the real clips ``hello_S18.mp4`` and ``thankyou_S01.mp4`` (signers not in the training data). The
page's camera is Chromium's fake device playing the clip (a ``.y4m`` written here with OpenCV).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest

from islr.cli import main as islr
from islr.config import ExperimentConfig, PreprocessConfig
from islr.errors import DataError
from islr.inference.predictor import BasePredictor

CLIPS = {"hello": "hello_S18.mp4", "thankyou": "thankyou_S01.mp4"}
UPLOAD_LIMIT_MB = 1
CHROMIUM = "/usr/bin/chromium"


# -- unit level -----------------------------------------------------------------------------------
class ConstantPredictor(BasePredictor):
    def __init__(self):
        self.cfg = ExperimentConfig(preprocess=PreprocessConfig(length_mode="variable"))
        self.sign_names = ["a", "b"]

    def logits_from_features(self, batch):
        return np.tile(np.array([[2.0, 0.0]], np.float32), (len(batch["x"]), 1))


def test_frame_messages_round_trip_and_refuse_garbage():
    from islr.serve.session import decode_image, decode_message, encode_frame

    assert decode_message(encode_frame(7, b"jpeg")) == (7, b"jpeg")
    assert decode_message(encode_frame(2**32 + 5, b"x"))[0] == 5  # ids wrap at 32 bits
    with pytest.raises(DataError, match="4-byte id"):
        decode_message(b"\x00\x00\x00\x01")
    with pytest.raises(DataError, match="not a JPEG or PNG"):
        decode_image(b"definitely not an image")


def test_overlay_points_keep_detected_parts_and_null_missing_ones():
    from islr.data.landmarks import LEFT_HAND_START, POSE_START, RIGHT_HAND_START
    from islr.inference.holistic import empty_frame
    from islr.serve.session import overlay_points

    frame = empty_frame()
    frame[RIGHT_HAND_START : RIGHT_HAND_START + 21] = [0.123456, 0.5, 0.0]
    frame[POSE_START : POSE_START + 33] = [0.25, 0.75, 0.0]
    frame[POSE_START + 3] = np.nan
    points = overlay_points(frame)
    assert points["left_hand"] is None and LEFT_HAND_START < RIGHT_HAND_START
    assert points["right_hand"][0] == [0.1235, 0.5] and len(points["right_hand"]) == 21
    assert len(points["pose"]) == 25 and points["pose"][3] is None and points["pose"][0] == [0.25, 0.75]
    json.dumps(points, allow_nan=False)  # valid JSON for the browser: no NaN


def test_session_queue_keeps_only_the_newest_frame():
    from islr.serve.session import FrameJob, LiveSession, LiveSettings

    session = LiveSession(ConstantPredictor(), LiveSettings(window=4, min_hand_frames=1))

    async def scenario():
        assert session.offer(FrameJob(1, b"a")) is None
        assert session.offer(FrameJob(2, b"b")).id == 1  # 1 waited: replaced, reported dropped
        assert session.offer(FrameJob(3, b"c")).id == 2
        job = await asyncio.wait_for(session.next_job(), 1)
        waiting = asyncio.create_task(session.next_job())
        await asyncio.sleep(0.01)
        assert not waiting.done()  # nothing left: waits for the next frame
        session.offer(FrameJob(4, b"d"))
        return job, await asyncio.wait_for(waiting, 1)

    first, second = asyncio.run(scenario())
    assert (first.id, second.id) == (3, 4)
    assert session.dropped == 2 and session.take_dropped() == [1, 2] and session.take_dropped() == []


def test_shared_predictor_and_sign_map(tmp_path):
    from islr.serve.app import SharedPredictor, load_sign_names

    good = tmp_path / "names.json"
    good.write_text(json.dumps({"B": 1, "A": 0}))
    names = load_sign_names(good, 2)
    assert names == ["A", "B"]
    shared = SharedPredictor(ConstantPredictor(), names)
    top = shared.top_k(np.random.default_rng(0).uniform(size=(5, 543, 3)).astype(np.float32), 2)
    assert top.signs == ["A", "B"] and top.probabilities[0] == pytest.approx(1 / (1 + np.exp(-2)))
    wrong = tmp_path / "three.json"
    wrong.write_text(json.dumps({"a": 0, "b": 1, "c": 2}))
    with pytest.raises(DataError, match=r"three\.json.*model has 2 signs"):
        load_sign_names(wrong, 2)
    with pytest.raises(DataError, match=r"missing\.json.*sign map not found"):
        load_sign_names(tmp_path / "missing.json", 2)


def test_serve_flags_are_checked_before_loading_anything(tmp_path, capsys):
    assert islr(["serve", str(tmp_path / "no-model"), "--port", "70000"]) == 2
    assert "--port out of range: 70000" in capsys.readouterr().err
    assert islr(["serve", str(tmp_path / "no-model"), "--max-upload-mb", "0"]) == 2
    assert "--max-upload-mb out of range" in capsys.readouterr().err
    assert islr(["serve", str(tmp_path / "no-model")]) == 2
    assert "no-model: not found" in capsys.readouterr().err


def test_serve_package_imports_nothing_of_training():
    import ast

    import islr.serve

    for path in Path(islr.serve.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.startswith("islr.training") for n in names), f"{path.name} imports {names}"


class FailingPredictor(ConstantPredictor):
    def logits_from_features(self, batch):
        raise RuntimeError("boom: a bug deep in the model")


@contextlib.contextmanager
def app_server(predictor, **settings):
    """`create_app` under uvicorn in a thread (in-process: for fakes and failure cases)."""
    import threading

    import uvicorn

    from islr.serve.app import ServeSettings, create_app

    app = create_app(predictor, "fake-model", ServeSettings(**settings))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def test_sessions_beyond_max_sessions_are_refused_and_freed_ones_reused():
    from websockets.asyncio.client import connect

    async def scenario(ws_url):
        async with connect(ws_url) as first:
            assert json.loads(await first.recv())["type"] == "ready"
            async with connect(ws_url) as second:
                refused = json.loads(await second.recv())
                with contextlib.suppress(Exception):
                    await second.recv()
                code = second.close_code
        # the first session is closed now: its slot is free again
        for _ in range(100):
            if get_json(ws_url.replace("ws://", "http://").replace("/ws/live", "/health"))[1]["sessions"] == 0:
                break
            await asyncio.sleep(0.05)
        async with connect(ws_url) as third:
            again = json.loads(await third.recv())
        return refused, code, again

    with app_server(ConstantPredictor(), max_sessions=1, workers=1) as url:
        refused, code, again = asyncio.run(scenario(url.replace("http://", "ws://") + "/ws/live"))
        assert refused == {"type": "error", "error": "server busy: 1 camera sessions open (--max-sessions)"}
        assert code == 1013 and again["type"] == "ready"
        status, health = get_json(url + "/health")
        assert status == 200 and health == {"status": "ok", "model": "fake-model", "signs": 2, "sessions": 0}
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(url + "/api/nothing-here", timeout=10)
        assert missing.value.code == 404 and json.loads(missing.value.read()) == {"error": "Not Found", "status": 404}


def test_the_page_loads_nothing_from_elsewhere():
    import re

    from islr.serve.app import STATIC

    files = {p.name: p.read_text() for p in STATIC.iterdir()}
    assert set(files) == {"index.html", "app.js", "style.css"}
    for name, text in files.items():
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, re.IGNORECASE), name
        assert "import " not in text or name != "app.js"  # plain script, no modules to fetch
    assert re.findall(r'(?:src|href)="([^"]+)"', files["index.html"]) == ["/static/style.css", "/static/app.js"]


# -- a trained model, the clips, a running server --------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def hello_run(real_data_dir, tmp_path_factory) -> Path:
    """A small transformer trained (about 10 s, 1 thread) on the genuine hello/thankyou files."""
    import torch

    from conftest import tiny_config
    from islr.training.pipeline import train

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("serve_run")
    cfg = tiny_config(real_data_dir, root / "cache", **{"train.epochs": 8, "train.batch_size": 32,
                                                        "data.signs": "hello,thankyou"})
    train(cfg, root / "run")
    return root / "run"


@pytest.fixture(scope="session")
def clips(real_videos_dir) -> dict[str, Path]:
    return {sign: real_videos_dir / name for sign, name in CLIPS.items()}


@pytest.fixture(scope="session")
def server(hello_run, tmp_path_factory):
    """`islr serve` in a subprocess (the real command), on a free port; yields its base URL."""
    port = _free_port()
    log = tmp_path_factory.mktemp("serve_log") / "serve.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "islr", "serve", str(hello_run), "--port", str(port),
                                 "--max-upload-mb", str(UPLOAD_LIMIT_MB), "--workers", "2"],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(OSError):
                if get_json(url + "/health")[0] == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"islr serve did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def get_json(url: str) -> tuple[int, dict]:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.status, json.loads(response.read())


def post_file(url: str, data: bytes, filename: str, field: str = "file") -> tuple[int, dict]:
    """POST one multipart file (stdlib only); (status, JSON body)."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url + "/api/predict", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def artifacts_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("ISLR_TEST_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# -- the model first: extract + predict get both clips right ---------------------------------------
@pytest.mark.real
def test_the_model_recognises_both_clips_through_extract_and_predict(hello_run, clips, tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    for path in clips.values():
        (videos / path.name).symlink_to(path)
    assert islr(["extract", str(videos), "--out", str(tmp_path / "ds")]) == 0
    capsys.readouterr()
    assert islr(["predict", str(hello_run), str(tmp_path / "ds"), "--format", "csv"]) == 0
    rows = [line.split(",") for line in capsys.readouterr().out.splitlines()[1:]]
    import pandas as pd

    train = pd.read_csv(tmp_path / "ds" / "train.csv")
    truth = {str(tmp_path / "ds" / p): s for p, s in zip(train["path"], train["sign"], strict=True)}
    top1 = {file: sign for file, rank, sign, _ in rows if rank == "1"}
    assert sorted(truth.values()) == ["hello", "thankyou"]
    assert {file: truth[file] for file in top1} == top1


# -- the JSON API ----------------------------------------------------------------------------------
@pytest.mark.real
def test_health_and_config(server, hello_run):
    status, health = get_json(server + "/health")
    assert status == 200 and health["status"] == "ok" and health["signs"] == 2
    assert health["model"] == str(hello_run)
    _, config = get_json(server + "/api/config")
    assert config["signs"] == ["hello", "thankyou"] and config["window"] == 32 and config["fps"] == 15
    assert [0, 1] in config["hand_bones"] and [11, 12] in config["pose_bones"]


@pytest.mark.real
@pytest.mark.parametrize("sign", list(CLIPS))
def test_api_predict_recognises_a_real_clip(server, clips, sign):
    status, answer = post_file(server, clips[sign].read_bytes(), clips[sign].name)
    assert status == 200, answer
    assert answer["top"][0]["sign"] == sign and answer["top"][0]["score"] > 0.5
    assert {t["sign"] for t in answer["top"]} == {"hello", "thankyou"}  # top-5 of a 2-sign model
    assert sum(t["score"] for t in answer["top"]) == pytest.approx(1.0, abs=1e-5)
    assert answer["frames"] == {"hello": 30, "thankyou": 57}[sign]
    assert 0 < answer["hand_frames"] <= answer["frames"] and not answer["truncated"]
    windows = answer["windows"]
    assert windows and all(w["hand_frames"] >= 8 for w in windows)
    assert [w["frame"] for w in windows] == sorted({w["frame"] for w in windows})
    majority = sum(w["top"][0]["sign"] == sign for w in windows) / len(windows)
    assert majority >= 0.8, windows


@pytest.mark.real
def test_api_refuses_bad_uploads_with_clear_json_and_keeps_serving(server, clips, tmp_path):
    import cv2

    status, body = post_file(server, b"this is plain text, not a video\n" * 20, "notes.txt")
    assert status == 415 and body["error"] == "notes.txt: not a video (OpenCV cannot decode it)"
    status, body = post_file(server, os.urandom(int(1.5 * 2**20)), "big.mp4")
    assert status == 413 and f"{UPLOAD_LIMIT_MB} MB limit" in body["error"]
    status, body = post_file(server, clips["hello"].read_bytes(), "clip.mp4", field="video")
    assert status == 400 and "'file'" in body["error"]
    status, body = post_file(server, b"", "empty.mp4")
    assert status == 415 and "empty" in body["error"]
    # A real video without anyone in it: decodes, but no hand -> 422.
    blank = tmp_path / "blank.avi"
    writer = cv2.VideoWriter(str(blank), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (160, 120))
    for i in range(12):
        writer.write(np.full((120, 160, 3), 40 + 10 * i, np.uint8))
    writer.release()
    status, body = post_file(server, blank.read_bytes(), "blank.avi")
    assert status == 422 and body["error"] == "blank.avi: no hand found in any of the 12 frames; nothing to recognise"
    # Chunked upload without Content-Length: the limit is enforced while reading the stream.
    host, port = server.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    head = b'--zzz\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n\r\n'
    chunks = iter([head] + [b"x" * 65536] * 32 + [b"\r\n--zzz--\r\n"])  # a 2 MB file
    connection.request("POST", "/api/predict", body=chunks, encode_chunked=True,
                       headers={"Content-Type": "multipart/form-data; boundary=zzz"})
    response = connection.getresponse()
    assert response.status == 413 and "limit" in json.loads(response.read())["error"]
    connection.close()
    assert get_json(server + "/health")[0] == 200


# -- camera sessions over the WebSocket --------------------------------------------------------------
@pytest.mark.real
def test_two_concurrent_sessions_each_get_their_own_sign(server, clips):
    from islr.serve.client import clip_jpegs, stream_frames

    ws = server.replace("http://", "ws://") + "/ws/live"
    frames = {sign: clip_jpegs(path) for sign, path in clips.items()}

    async def both():
        return await asyncio.gather(*(stream_frames(ws, frames[s], count=15 * 120, fps=15, until_predictions=15) for s in ("hello", "thankyou")))

    hello, thankyou = asyncio.run(both())
    for sign, stats in (("hello", hello), ("thankyou", thankyou)):
        assert stats.errors == 0 and sum(stats.top1.values()) >= 15, stats
        assert stats.majority == sign, (sign, stats.top1)
        assert stats.top1[sign] >= 0.8 * sum(stats.top1.values()), (sign, stats.top1)
        assert stats.drawn >= 0.9 * stats.answered  # the signer's skeleton comes back to be drawn
    deadline = time.monotonic() + 10
    while get_json(server + "/health")[1]["sessions"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert get_json(server + "/health")[1]["sessions"] == 0  # freed on disconnect


@pytest.mark.real
def test_a_client_faster_than_the_server_gets_frames_dropped_not_queued(server, clips):
    from islr.serve.client import clip_jpegs, stream_frames

    ws = server.replace("http://", "ws://") + "/ws/live"
    frames = clip_jpegs(clips["hello"])
    # 100 frames/s with no in-flight cap: far more than Holistic can take.
    stats = asyncio.run(stream_frames(ws, frames, count=100 * 120, fps=100, max_in_flight=10**6, keep_messages=True,
                                      until_predictions=10))
    assert stats.dropped > 0 and stats.errors == 0
    assert stats.sent == stats.answered + stats.dropped  # every frame is answered or reported dropped
    assert max(m["queue_ms"] for m in stats.messages) < 5000  # never a backlog of old frames
    assert stats.majority == "hello"


@pytest.mark.real
def test_a_failing_model_gives_json_errors_without_traceback_and_the_server_keeps_serving(clips):
    from websockets.asyncio.client import connect

    from islr.serve.client import clip_jpegs
    from islr.serve.session import encode_frame

    frames = clip_jpegs(clips["hello"])[:10]

    async def one_by_one(ws_url):
        async with connect(ws_url) as ws:
            assert json.loads(await ws.recv())["type"] == "ready"
            answers = []
            for i, frame in enumerate([*frames, b"not a jpeg"]):
                await ws.send(encode_frame(i, frame))
                answers.append(json.loads(await ws.recv()))
            return answers

    with app_server(FailingPredictor(), workers=1) as url:
        status, body = post_file(url, clips["hello"].read_bytes(), "hello.mp4")
        assert status == 500 and body == {"error": "internal error; see the server log", "status": 500}
        answers = asyncio.run(one_by_one(url.replace("http://", "ws://") + "/ws/live"))
        # 7 hand frames: no prediction yet, answered; from the 8th the model fails: a JSON error each
        assert [a["type"] for a in answers[:7]] == ["frame"] * 7 and all(a["top"] == [] for a in answers[:7])
        assert answers[7:10] == [{"type": "error", "id": i, "error": "internal error; see the server log",
                                  "dropped_ids": []} for i in (7, 8, 9)]
        assert answers[10]["type"] == "error" and "not a JPEG or PNG image" in answers[10]["error"]
        assert "Traceback" not in json.dumps(answers) and "boom" not in json.dumps(answers)
        assert get_json(url + "/health")[0] == 200


# -- the page in a real browser ------------------------------------------------------------------------
def write_y4m(video: Path, out: Path, size: tuple[int, int] = (640, 360)) -> Path:
    """A YUV4MPEG2 clip (what Chromium's fake camera plays), scaled to ``size``."""
    import cv2

    capture = cv2.VideoCapture(str(video))
    with open(out, "wb") as f:
        f.write(f"YUV4MPEG2 W{size[0]} H{size[1]} F30:1 Ip A1:1 C420jpeg\n".encode())
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            f.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    capture.release()
    return out


@contextlib.contextmanager
def browser_page(tmp_path: Path, camera_clip: Path):
    """A page of headless Debian Chromium whose camera plays ``camera_clip`` (a fresh profile)."""
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={camera_clip}", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=args,
            viewport={"width": 1280, "height": 860})
        try:
            page = context.pages[0] if context.pages else context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            yield page, errors
        finally:
            context.close()


# Pixels of the overlay in the skeleton's exact colours (pose #d0d4dc, hands #ffa000 / #00a0ff).
SKELETON_PIXELS = """() => {
  const c = document.getElementById('overlay');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const colours = [[208, 212, 220], [255, 160, 0], [0, 160, 255]];
  let n = 0;
  for (let i = 0; i < d.length; i += 4)
    if (colours.some(([r, g, b]) => d[i] === r && d[i + 1] === g && d[i + 2] === b)) n++;
  return n;
}"""


@pytest.mark.real
@pytest.mark.parametrize("sign", list(CLIPS))
def test_page_recognises_the_clip_from_the_camera_and_the_upload_box(server, clips, sign, tmp_path):
    camera = write_y4m(clips[sign], tmp_path / f"{sign}.y4m")
    with browser_page(tmp_path, camera) as (page, errors):
        page.goto(server + "/")
        page.wait_for_selector("body[data-ready='1']")
        assert "2 signs" in page.inner_text("#model-info")
        page.click("#camera-start")
        page.wait_for_function("window.islr.live.predictions >= 12", timeout=120_000)
        live = page.evaluate("window.islr.live.counts")
        assert max(live, key=live.get) == sign and live[sign] >= 0.8 * sum(live.values()), live
        page.wait_for_function(
            f"document.querySelector('#live-top li:first-child .sign')?.textContent === {json.dumps(sign)}", timeout=30_000)
        drawn = int(page.get_attribute("#overlay", "data-drawn"))
        assert drawn >= 12 and page.evaluate(SKELETON_PIXELS) > 200  # the skeleton is on the canvas
        assert "drawn" in page.inner_text("#live-stats")

        page.set_input_files("#upload-file", str(clips[sign]))
        page.click("#upload-button")
        page.wait_for_function("window.islr.upload.result !== null || window.islr.upload.error !== null", timeout=180_000)
        result = page.evaluate("window.islr.upload.result")
        assert result is not None, page.evaluate("window.islr.upload.error")
        assert result["top"][0]["sign"] == sign
        assert page.inner_text("#upload-top li:first-child .sign") == sign
        assert page.locator("#timeline span").count() == len(result["windows"]) > 0
        shot = artifacts_dir(tmp_path) / f"serve-{sign}.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot: {shot}")
        assert errors == []
    assert shot.stat().st_size > 10_000
