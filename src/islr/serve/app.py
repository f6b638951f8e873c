"""The ``islr serve`` web app (Starlette): one page, a JSON API and a WebSocket per camera.

Routes: ``GET /`` (the page), ``GET /static/*`` (its script and style, package data: nothing from
a CDN), ``GET /health``, ``GET /api/config`` (what the page needs: window, rate, bones, signs),
``POST /api/predict`` (multipart field ``file``: a video -> top-k, counts, per-window timeline) and
``WS /ws/live`` (binary frames in, one JSON message per processed frame out; see
:mod:`islr.serve.session`). Every error is a JSON ``{"error": ...}`` with a 4xx/5xx status; no
traceback ever reaches a client (it goes to the server log).

All MediaPipe and model work runs in one bounded thread pool off the event loop; the predictor is
shared by every session behind a lock (TFLite interpreters are not thread-safe).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from islr.data.landmarks import HAND_EDGES, POSE_EDGES
from islr.errors import DataError, DeviceError, IslrError
from islr.inference.predictor import BATCH_SIZE, BasePredictor
from islr.inference.video import VIDEO_SUFFIXES
from islr.serve.session import FrameJob, LiveSession, LiveSettings, SessionClosed, decode_message
from islr.serve.upload import NoHandError, recognise_video

STATIC = Path(__file__).parent / "static"
#: Multipart headers and boundaries on top of the file itself.
FORM_SLACK = 64 * 1024
log = logging.getLogger("islr.serve")


@dataclass(frozen=True)
class ServeSettings:
    """Limits of one server."""

    max_upload_mb: float = 50.0
    max_upload_frames: int = 3600
    """Frames of an upload that are read (2 minutes at 30 fps); the answer says when it was cut."""
    max_sessions: int = 8
    workers: int = 2
    """Threads running MediaPipe and the model (one Holistic frame uses about a core)."""
    live: LiveSettings = field(default_factory=LiveSettings)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)


class SharedPredictor(BasePredictor):
    """One predictor for every session and upload: calls are serialised by a lock."""

    def __init__(self, inner: BasePredictor, sign_names: Sequence[str] | None = None):
        self.inner = inner
        self.cfg = inner.cfg
        self.sign_names = list(sign_names) if sign_names is not None else list(inner.sign_names)
        self._lock = threading.Lock()

    def features(self, raw: np.ndarray) -> np.ndarray:
        return self.inner.features(raw)

    def logits(self, raw: np.ndarray) -> np.ndarray:
        with self._lock:
            return self.inner.logits(raw)

    def logits_batch(self, raws: Sequence[np.ndarray], batch_size: int = BATCH_SIZE) -> np.ndarray:
        with self._lock:
            return self.inner.logits_batch(raws, batch_size)


def load_sign_names(path: str | Path, num_classes: int) -> list[str]:
    """Sign names in index order from a ``sign -> index`` JSON (a file, or a folder holding the Kaggle one),
    checked against the model's number of classes."""
    from islr.inference.exported import sign_names_from_map

    names = sign_names_from_map(path)
    if len(names) != num_classes:
        raise DataError(path, f"{len(names)} signs, but the model has {num_classes} signs")
    return names


def error(status: int, message: str) -> JSONResponse:
    """The one error shape of the API."""
    return JSONResponse({"error": message, "status": status}, status_code=status)


class _TooLarge(Exception):
    pass


class PoolClosed(Exception):
    """The worker pool is shut down (the server is stopping)."""


def _limited(receive: Callable[[], Awaitable[dict[str, Any]]], limit: int) -> Callable[[], Awaitable[dict[str, Any]]]:
    """An ASGI ``receive`` that raises once more than ``limit`` body bytes arrived (no Content-Length needed)."""
    seen = 0

    async def wrapped() -> dict[str, Any]:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise _TooLarge
        return message

    return wrapped


async def _drain(request: Request, cap: int) -> None:
    """Read (and discard) what is left of a refused body, so the client gets the answer, not a reset."""
    seen = 0
    with contextlib.suppress(Exception):
        while seen < cap:
            message = await request.receive()
            seen += len(message.get("body", b""))
            if message.get("type") != "http.request" or not message.get("more_body", False):
                return


def _save(upload: UploadFile, path: Path) -> int:
    """Copy an upload (spooled by the form parser) to ``path``; its size in bytes."""
    upload.file.seek(0)
    with open(path, "wb") as out:
        shutil.copyfileobj(upload.file, out, 2**20)
        return out.tell()


def _upload_name(upload: UploadFile) -> str:
    name = Path(upload.filename or "upload").name
    return "".join(c for c in name if c.isprintable())[:120] or "upload"


def create_app(predictor: BasePredictor, model_name: str, settings: ServeSettings | None = None) -> Starlette:
    """The ASGI app serving ``predictor`` (wrapped in a :class:`SharedPredictor` if it is not one)."""
    settings = settings or ServeSettings()
    shared = predictor if isinstance(predictor, SharedPredictor) else SharedPredictor(predictor)
    executor = ThreadPoolExecutor(max_workers=max(1, settings.workers), thread_name_prefix="islr-serve")
    sessions: set[LiveSession] = set()
    uploads = asyncio.Semaphore(max(1, settings.workers - 1))  # leave a worker to the cameras
    live = settings.live

    async def in_pool(fn: Callable[..., Any], *args: Any) -> Any:
        try:
            future = asyncio.get_running_loop().run_in_executor(executor, fn, *args)
        except RuntimeError:  # the pool is shut down: the server is stopping
            raise PoolClosed from None
        return await future

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": model_name, "signs": shared.num_classes, "sessions": len(sessions)})

    async def config(request: Request) -> Response:
        return JSONResponse({
            "model": model_name, "family": shared.cfg.model.name, "signs": shared.sign_names,
            "window": live.window, "min_hand_frames": live.min_hand_frames, "threshold": live.threshold,
            "top_k": live.top_k, "fps": live.fps, "max_in_flight": live.max_in_flight, "jpeg_width": 640,
            "jpeg_quality": 0.8, "max_upload_mb": settings.max_upload_mb,
            "hand_bones": HAND_EDGES, "pose_bones": POSE_EDGES,
        })

    async def predict(request: Request) -> Response:
        limit = settings.max_upload_bytes
        too_large = f"upload larger than the {settings.max_upload_mb:g} MB limit (--max-upload-mb)"
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit + FORM_SLACK:
            await _drain(request, 8 * (limit + FORM_SLACK))
            return error(413, too_large)
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return error(400, "send the video as multipart/form-data in the field 'file'")
        limited = Request(request.scope, _limited(request.receive, limit + FORM_SLACK))
        try:
            form = await limited.form(max_files=1, max_fields=8)
        except _TooLarge:
            await _drain(request, 8 * (limit + FORM_SLACK))
            return error(413, too_large)
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                return error(400, "multipart field 'file' (a video) is missing")
            name = _upload_name(upload)
            if upload.size is not None and upload.size > limit:
                return error(413, f"{name}: {too_large}")
            suffix = Path(name).suffix.lower()
            async with uploads:
                with tempfile.TemporaryDirectory(prefix="islr-serve-") as tmp:
                    path = Path(tmp) / ("upload" + (suffix if suffix in VIDEO_SUFFIXES else ".video"))
                    size = await asyncio.to_thread(_save, upload, path)
                    if size == 0:
                        return error(415, f"{name}: empty file, not a video")
                    try:
                        answer = await in_pool(recognise_video, path, shared, live, 5, settings.max_upload_frames)
                    except DeviceError:
                        return error(415, f"{name}: not a video (OpenCV cannot decode it)")
                    except NoHandError as exc:
                        return error(422, f"{name}: {exc}; nothing to recognise")
            return JSONResponse({"file": name, **answer.as_dict()})
        finally:
            await form.close()

    async def live_socket(ws: WebSocket) -> None:
        await ws.accept()
        if len(sessions) >= settings.max_sessions:
            await ws.send_json({"type": "error", "error": f"server busy: {len(sessions)} camera sessions open (--max-sessions)"})
            await ws.close(code=1013)
            return
        session = LiveSession(shared, live)
        sessions.add(session)
        worker: asyncio.Task[None] | None = None
        try:
            await in_pool(session.open)
            await ws.send_json({"type": "ready", "signs": shared.sign_names, "window": live.window})
            worker = asyncio.create_task(_work(ws, session, in_pool))
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                if message.get("bytes") is not None:
                    try:
                        frame_id, image = decode_message(message["bytes"])
                    except DataError:
                        continue  # a malformed message carries no id to answer
                    session.offer(FrameJob(frame_id, image))
                elif message.get("text"):
                    with contextlib.suppress(ValueError, AttributeError):
                        if json.loads(message["text"]).get("type") == "reset":
                            session.request_reset()
        except (WebSocketDisconnect, OSError):  # the page went away (uvicorn's ClientDisconnected is an OSError)
            pass
        except IslrError as exc:  # e.g. MediaPipe missing: say so, in one line
            with contextlib.suppress(Exception):
                await ws.send_json({"type": "error", "error": str(exc)})
                await ws.close(code=1011)
        except Exception:
            log.exception("camera session failed")
            with contextlib.suppress(Exception):
                if ws.application_state == WebSocketState.CONNECTED:
                    await ws.send_json({"type": "error", "error": "internal error; see the server log"})
                    await ws.close(code=1011)
        finally:
            if worker is not None:
                worker.cancel()
                with contextlib.suppress(BaseException):
                    await worker
            sessions.discard(session)
            try:
                await in_pool(session.close)  # waits for a frame still in the pool, then frees the graph
            except PoolClosed:
                session.close()

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error(exc.status_code, str(exc.detail))

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("request %s %s failed", request.method, request.url.path, exc_info=exc)
        return error(500, "internal error; see the server log")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if "torch" in sys.modules:  # the model forward is tiny: one thread each, the cores go to MediaPipe
            sys.modules["torch"].set_num_threads(1)
        try:
            yield
        finally:
            executor.shutdown(wait=False, cancel_futures=True)

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/favicon.ico", lambda request: Response(status_code=204)),
            Route("/health", health),
            Route("/api/config", config),
            Route("/api/predict", predict, methods=["POST"]),
            WebSocketRoute("/ws/live", live_socket),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )
    app.state.sessions = sessions
    app.state.settings = settings
    return app


async def _work(ws: WebSocket, session: LiveSession, in_pool: Callable[..., Awaitable[Any]]) -> None:
    """Process the newest frame, answer, repeat (one frame of a session in the pool at a time)."""
    while True:
        job = await session.next_job()
        try:
            answer = await in_pool(session.process, job)
        except (SessionClosed, PoolClosed):
            return
        except IslrError as exc:
            answer = {"type": "error", "id": job.id, "error": str(exc)}
        except Exception:
            log.exception("frame %s failed", job.id)
            answer = {"type": "error", "id": job.id, "error": "internal error; see the server log"}
        answer["dropped_ids"] = session.take_dropped()
        try:
            await ws.send_json(answer)
        except (WebSocketDisconnect, RuntimeError, OSError):
            return
