"""The ZeroMQ service: a ROUTER socket, a FIFO job queue and one worker thread that dreams.

Knows nothing of TensorFlow: it drives anything with the `DreamEngine` methods. All queue state lives
in the main thread; the worker only runs jobs and pushes their events back over an inproc socket, so
no ZeroMQ socket is shared between threads.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import zmq

from wire import protocol

log = logging.getLogger(__name__)

EVENTS_ENDPOINT = "inproc://dream-events"
POLL_MS = 100
HEARTBEAT_IVL_MS = 1000  # ZMTP heartbeats find peers whose host vanished without closing TCP
# libzmq counts a peer as silent until a whole frame has arrived, so this must outlast the upload of
# the largest layer over a slow link (24 MP RGBA over 100 Mbit/s: ~8 s). A killed client is noticed at
# once anyway: its operating system closes the TCP connection.
HEARTBEAT_TIMEOUT_MS = 60_000
_FINISHED = b"finished"  # internal worker → main thread marker


class DreamEngine(Protocol):
    """What the service needs from the dream engine (backend/engine.py implements it)."""

    max_pixels: int

    def info(self) -> dict[str, Any]: ...

    def presets(self) -> tuple[dict[str, Any], str | None]: ...

    def settings(self, preset: str, overrides: dict[str, Any], job: Any = None,
                 guide_shape: tuple[int, int] | None = None) -> Any:
        """The preset with the overrides applied; its to_json() goes into `accepted`."""

    def prepare_worker(self) -> None:
        """Called in the worker thread before its first job, so that job does not pay first-use costs."""

    def run(
        self,
        request: protocol.DreamRequest,
        pixels: bytes,
        seed: int,
        on_evaluation: Callable[[int, int, float], None],
        on_iteration: Callable[[int, float, bytes], None],
        should_stop: Callable[[], bool],
        guide_pixels: bytes | None = None,
    ) -> None: ...

    def run_animation(
        self,
        request: protocol.AnimateRequest,
        pixels: bytes,
        seed: int,
        on_evaluation: Callable[[int, int, int, float], None],
        on_frame: Callable[[int, float, bytes], None],
        should_stop: Callable[[], bool],
    ) -> None: ...


@dataclass(frozen=True)
class Settings:
    """The service's limits (see wire/protocol.py for what each bounds) and its idle time-out."""

    max_queue: int = protocol.MAX_QUEUE
    max_message_bytes: int = protocol.MAX_MESSAGE_BYTES
    idle_timeout: float = 0.0  # seconds with no job and no request before serve() returns; 0 = never


class Security(Protocol):
    """Who may connect (backend/service/security.py): set up on the ROUTER before it binds."""

    def apply(self, socket: zmq.Socket) -> None: ...

    def close(self) -> None: ...


@dataclass
class Job:
    client: bytes  # the ROUTER identity of the client that sent it
    request: protocol.DreamRequest
    pixels: bytes
    seed: int
    stop: threading.Event = field(default_factory=threading.Event)
    animation: protocol.AnimateRequest | None = None  # an `animate` job; `request` is its dream part
    guide: bytes | None = None  # a guided dream's guide pixels

    @property
    def key(self) -> tuple[bytes, Any]:
        return self.client, self.request.job


class Server:
    def __init__(self, engine: DreamEngine, bind: str, version: str, context: zmq.Context | None = None,
                 settings: Settings | None = None, security: Security | None = None) -> None:
        self.engine = engine
        self.version = version
        self.settings = settings or Settings()
        self.security = security
        self.context = context or zmq.Context.instance()
        self.router = self.context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a send to a vanished client raises EHOSTUNREACH
        self.router.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
        self.router.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
        self.router.setsockopt(zmq.MAXMSGSIZE, self.settings.max_message_bytes)  # larger: libzmq disconnects
        if security is not None:
            security.apply(self.router)
        try:
            self.router.bind(bind)
        except zmq.ZMQError:
            self.router.close(linger=0)
            raise
        self.endpoint = self.router.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.events = self.context.socket(zmq.PULL)
        self.events.bind(EVENTS_ENDPOINT)
        self.waiting: deque[Job] = deque()
        self.running: Job | None = None
        self.stopping = threading.Event()
        self.idle_since = time.monotonic()  # the last request, or the last job's end
        self._jobs_for_worker: queue.Queue[Job | None] = queue.Queue()
        self._worker = threading.Thread(target=self._work, name="dream-worker", daemon=True)
        self.worker_ready = threading.Event()  # set once the worker has prepared and takes jobs

    # ---- main thread -------------------------------------------------------------------------

    def serve(self) -> None:
        """Serve until stop() is called (e.g. from a signal handler); then close the sockets."""
        self._worker.start()
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.events, zmq.POLLIN)
        try:
            while not self.stopping.is_set():
                ready = dict(poller.poll(POLL_MS))
                if self.events in ready:
                    self._forward_events()
                if self.router in ready:
                    self._handle_requests()
                if self._idle_too_long():
                    log.info("idle for %g s: stopping (--idle-timeout)", self.settings.idle_timeout)
                    break
        finally:
            self._shutdown()

    def stop(self) -> None:
        self.stopping.set()

    def _idle_too_long(self) -> bool:
        busy = self.running is not None or self.waiting
        timeout = self.settings.idle_timeout
        return bool(timeout) and not busy and time.monotonic() - self.idle_since >= timeout

    def _shutdown(self) -> None:
        if self.running:
            self.running.stop.set()
        self._jobs_for_worker.put(None)
        self._worker.join(timeout=30)
        self.router.close(linger=0)
        self.events.close(linger=0)
        if self.security is not None:
            self.security.close()

    def _handle_requests(self) -> None:
        while self.router.poll(0):
            frames = self.router.recv_multipart(copy=True)
            client, body = frames[0], frames[1:]
            self.idle_since = time.monotonic()
            try:
                self._handle(client, body)
            except protocol.ProtocolError as exc:
                self._send(client, protocol.error(exc.job, exc.code, exc.message))
            except Exception as exc:  # a bug must not take the service down
                log.exception("internal error handling a request")
                self._send(client, protocol.error(None, protocol.E_INTERNAL, f"internal error: {exc}"))

    def _handle(self, client: bytes, body: list[bytes]) -> None:
        header, pixels, guide = protocol.decode_request(body, protocol.MAX_HEADER_BYTES)
        kind = header["type"]
        if kind == protocol.HELLO:
            self._hello(client, header)
        elif kind == protocol.PRESETS:
            presets, problem = self.engine.presets()
            self._send(client, protocol.presets_reply({name: p.listing() for name, p in presets.items()}, problem))
        elif kind in (protocol.DREAM, protocol.ANIMATE):
            self._accept(client, header, pixels, guide)
        elif kind == protocol.CANCEL:
            self._cancel(client, protocol.job_id(header))
        else:
            raise protocol.ProtocolError(protocol.E_UNKNOWN_TYPE, f"unknown message type {kind!r}", header.get("job"))

    def _hello(self, client: bytes, header: dict[str, Any]) -> None:
        if type(header.get("protocol")) is not int or header["protocol"] != protocol.PROTOCOL_VERSION:
            raise protocol.ProtocolError(
                protocol.E_PROTOCOL,
                f"this backend speaks protocol {protocol.PROTOCOL_VERSION}, not {header.get('protocol')!r}",
            )
        limits = {"max_message_bytes": self.settings.max_message_bytes, "max_iterations": protocol.MAX_ITERATIONS,
                  "max_queue": self.settings.max_queue}
        self._send(client, protocol.hello_reply(self.version, self.engine.info() | limits))

    def _accept(self, client: bytes, header: dict[str, Any], pixels: bytes | None, guide: bytes | None) -> None:
        animation = None
        if header["type"] == protocol.ANIMATE:
            animation = protocol.parse_animate(header, pixels, self.engine.max_pixels)
            request = animation.dream
        else:
            request = protocol.parse_dream(header, pixels, self.engine.max_pixels, guide)
        # unknown preset/layer, unusable guide → error now
        settings = self.engine.settings(request.preset, request.params, request.job, guide_shape=request.guide_shape)
        if self._find(client, request.job) is not None:
            raise protocol.ProtocolError(
                protocol.E_DUPLICATE_JOB, f"job {request.job!r} is already queued or running", request.job
            )
        if len(self.waiting) >= self.settings.max_queue:
            raise protocol.ProtocolError(
                protocol.E_QUEUE_FULL, f"{len(self.waiting)} dreams are waiting already, the most this backend "
                "queues: try again when one has finished", request.job)
        seed = request.seed if request.seed is not None else random.randrange(2**31)
        job = Job(client, request, pixels or b"", seed, animation=animation, guide=guide)
        position = len(self.waiting) + (1 if self.running else 0)
        self.waiting.append(job)
        log.info("job %r accepted at position %d (%d×%d, %s)", request.job, position, request.width,
                 request.height, request.preset)
        if self._send(client, protocol.accepted(request.job, position, seed, settings.to_json())):
            self._start_next()
        else:
            self.waiting.remove(job)

    def _cancel(self, client: bytes, job_id: Any) -> None:
        job = self._find(client, job_id)
        if job is None:
            raise protocol.ProtocolError(protocol.E_UNKNOWN_JOB, f"no queued or running job {job_id!r}", job_id)
        if job is self.running:
            job.stop.set()  # the worker answers `cancelled` before its next evaluation
        else:
            self.waiting.remove(job)
            self._send(client, protocol.cancelled(job_id))
            self._announce_positions()

    def _find(self, client: bytes, job_id: Any) -> Job | None:
        for job in ([self.running] if self.running else []) + list(self.waiting):
            if job.key == (client, job_id):
                return job
        return None

    def _start_next(self) -> None:
        if self.running is None and self.waiting:
            self.running = self.waiting.popleft()
            self._jobs_for_worker.put(self.running)
            self._announce_positions()

    def _announce_positions(self) -> None:
        """Tell queued jobs their new place; a client that is gone loses its job here."""
        for position, job in enumerate(list(self.waiting), start=1 if self.running else 0):
            if not self._send(job.client, protocol.queued(job.request.job, position)):
                self.waiting.remove(job)

    def _forward_events(self) -> None:
        while self.events.poll(0):
            client, *frames = self.events.recv_multipart()
            if client == _FINISHED:
                self.running = None
                self.idle_since = time.monotonic()
                self._start_next()
            elif not self._send_frames(client, frames) and self.running and self.running.client == client:
                log.info("client of job %r is gone: cancelling it", self.running.request.job)
                self.running.stop.set()

    def _send(self, client: bytes, header: dict[str, Any], pixels: bytes | None = None) -> bool:
        return self._send_frames(client, protocol.encode(header, pixels))

    def _send_frames(self, client: bytes, frames: list[bytes]) -> bool:
        """Send to one client; False when it is gone (or too far behind to take more)."""
        try:
            self.router.send_multipart([client, *frames], flags=zmq.NOBLOCK)
            return True
        except zmq.ZMQError as exc:
            if exc.errno not in (zmq.EHOSTUNREACH, zmq.EAGAIN):
                raise
            return False

    # ---- worker thread -----------------------------------------------------------------------

    def _work(self) -> None:
        push = self.context.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 0)
        push.connect(EVENTS_ENDPOINT)
        try:
            self.engine.prepare_worker()
            self.worker_ready.set()
            while (job := self._jobs_for_worker.get()) is not None:
                self._run(job, push)
                push.send_multipart([_FINISHED])
        finally:
            push.close(linger=0)

    def _run(self, job: Job, push: zmq.Socket) -> None:
        job_id = job.request.job

        def emit(header: dict[str, Any], pixels: bytes | None = None) -> None:
            push.send_multipart([job.client, *protocol.encode(header, pixels)])

        def on_evaluation(iteration: int, evaluation: int, loss: float) -> None:
            emit(protocol.progress(job_id, iteration, evaluation, loss))

        def on_iteration(iteration: int, loss: float, pixels: bytes) -> None:
            request = job.request
            emit(protocol.iteration(job_id, iteration, loss, request.width, request.height, request.channels,
                                    sample_format=request.sample_format), pixels)

        emit(protocol.started(job_id))
        try:
            if job.animation is not None:
                self._run_animation(job, emit)
            else:
                self.engine.run(job.request, job.pixels, job.seed, on_evaluation, on_iteration, job.stop.is_set,
                                guide_pixels=job.guide)
        except protocol.ProtocolError as exc:
            emit(protocol.error(job_id, exc.code, exc.message))
        except Exception as exc:
            if job.stop.is_set():
                log.info("job %r cancelled", job_id)
                emit(protocol.cancelled(job_id))
            else:
                log.exception("job %r failed", job_id)
                emit(protocol.error(job_id, protocol.E_INTERNAL, f"the dream failed: {exc}"))
        else:
            emit(protocol.done(job_id))

    def _run_animation(self, job: Job, emit: Callable[..., None]) -> None:
        """An `animate` job: progress with its frame, and each finished frame's pixels as soon as it is made."""
        request, animation = job.request, job.animation
        assert animation is not None

        def on_evaluation(frame: int, iteration: int, evaluation: int, loss: float) -> None:
            emit(protocol.frame_progress(request.job, frame, iteration, evaluation, loss))

        def on_frame(frame: int, loss: float, pixels: bytes) -> None:
            emit(protocol.frame(request.job, frame, animation.frames, loss, request.width, request.height,
                                request.channels), pixels)

        self.engine.run_animation(animation, job.pixels, job.seed, on_evaluation, on_frame, job.stop.is_set)
