"""A seeded fuzz run against a real backend process: malformed and mutated messages, floods of cancels.

Each message is sent and its direct answer awaited (an `error`, or what a valid request gets): nothing may
go unanswered, every error carries a code from wire/protocol.py, the backend is asked `hello` between
batches, its resident memory is compared before and after, and a valid dream must succeed at the end.
Dreams are tiny (8×8, dreamt at 32×32, block1_conv1) so the run stays well inside its time bound.
"""

from __future__ import annotations

import json
import random
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BackendProcess
from tests.test_server import dream, events_until_end
from wire import protocol
from wire.client import Client

SEED = 20251125
MESSAGES = 10_000
WALL_LIMIT_S = 120.0  # the bound for the whole run
REPLY_TIMEOUT_S = 10.0  # an answer later than this is a stall
LIVENESS_EVERY = 500
MEMORY_GROWTH_LIMIT = 150 * 1024 * 1024  # generous: TensorFlow's allocator keeps what it has used
MAX_QUEUE = 4
SIDE = 8
PIXELS = bytes(range(256)) * (SIDE * SIDE * 3 // 256) + bytes(SIDE * SIDE * 3 % 256)
# A valid frame in each sample format (f32: finite values in 0..1, and a few beyond it, which are clipped).
FRAMES = {protocol.U8: PIXELS, protocol.U16: PIXELS * 2,
          protocol.F32: struct.pack(f"<{SIDE * SIDE * 3}f", *(i / 150 - 0.1 for i in range(SIDE * SIDE * 3)))}
NOT_FINITE = FRAMES[protocol.F32][:-8] + struct.pack("<2f", float("nan"), float("inf"))  # refused when it runs
DIRECT = {protocol.HELLO, protocol.PRESETS, protocol.ACCEPTED, protocol.ERROR, protocol.CANCELLED}
ENDED = {protocol.DONE, protocol.CANCELLED, protocol.ERROR}

# Values a mutation puts into a field: wrong types, edges, huge and negative numbers, unknown names.
VALUES: list[Any] = [None, True, False, 0, 1, -1, 2, 8, 3.5, -0.0, 1e308, -1e308, 2**31, 2**63, 10**30, -(10**30), "",
                     "8", "x" * 300, "doggos", "tiny", "nightmare", "block1_conv1", "block9_conv9", [], [8], {},
                     {"block1_conv1": 0.05}, {"block9_conv9": 1}, {"block1_conv1": -1}, {"block1_conv1": "lots"},
                     {"features": {"block1_conv1": 0.05}}, {"features": {"block1_conv2": 1000}}, {"jitter": 300},
                     {"continuity": 1e999}, {"max_step": 300}, {"max_step": -1}, {"max_step": 1e-300},
                     {"description": "a preset's text, not a setting"}, 1000, 1001,
                     0.4, 181, [1, 2], [-1e5, 0], [0, 0, 0], [None, 1], "u8", "u16", "f32", "U16", "float", "u32"]
GUIDE_VALUES: list[Any] = [None, 0, 8, 31, 33.5, 1024, 1025, 2**40, "big", [], ["block1_conv1"], ["block5_conv1"],
                           "block1_conv1", [1], ["block1_conv1"] * 20]
FIELDS = ["type", "job", "protocol", "width", "height", "channels", "preset", "iterations", "params", "seed",
          "max_size", "format", "extra", "frames", "zoom", "rotate", "pan", "centre", "blend"]
TYPES = ["hello", "presets", "dream", "cancel", "Dream", "", "iteration", "done", "error", "accepted", "animate",
         "frame"]


def memory(pid: int) -> int:
    """Resident set size of a process, in bytes (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class Fuzzer:
    def __init__(self, client: Client, rng: random.Random) -> None:
        self.client = client
        self.rng = rng
        self.counter = 0
        self.open_jobs: list[Any] = []  # accepted by the backend, not ended yet
        self.ended: set[Any] = set()
        self.outcomes: dict[str, int] = {}
        self.sent = 0
        self.frames = 0  # `frame` events of the animations that ran

    # ---- making messages ---------------------------------------------------------------------------

    def new_job(self) -> str:
        self.counter += 1
        return f"fuzz-{self.counter}"

    def valid(self) -> tuple[dict[str, Any], bytes | None]:
        kind = self.rng.choice(["hello", "presets", "dream", "dream", "animate", "cancel"])
        if kind == "hello":
            return protocol.hello_request(), None
        if kind == "presets":
            return protocol.presets_request(), None
        if kind == "cancel":
            return protocol.cancel_request(self.new_job()), None
        if kind == "animate":
            return protocol.animate_request(self.new_job(), SIDE, SIDE, 3, "tiny", 1, self.rng.randint(1, 3),
                                            zoom=1.05, rotate=self.rng.uniform(-10, 10), pan=(1, -1), blend=0.2,
                                            params={"features": {"block1_conv1": 0.05}}), PIXELS
        sample_format = self.rng.choice(protocol.SAMPLE_FORMATS)
        return protocol.dream_request(self.new_job(), SIDE, SIDE, 3, self.rng.choice(["tiny", "doggos"]), 1,
                                      {"features": {"block1_conv1": 0.05}}, seed=self.rng.randrange(100),
                                      sample_format=sample_format), FRAMES[sample_format]

    def guided(self) -> list[bytes]:
        """A guided dream (guide fields and a third frame), often with its guide broken: fields mutated, the
        frame cut short, emptied or left out, guide settings out of range or NaN, a guide over the limits."""
        params = {"features": {"block1_conv1": 0.05}, "guide_size": 32}
        header = protocol.dream_request(self.new_job(), SIDE, SIDE, 3, "tiny", 1, params, guide=(SIDE, SIDE, 3),
                                        seed=self.rng.randrange(100))
        guide: bytes | None = PIXELS[::-1]
        choice = self.rng.random()
        if choice < 0.3:
            header[self.rng.choice(protocol.GUIDE_FIELDS)] = self.rng.choice(VALUES)
        elif choice < 0.45:
            guide = guide[: self.rng.randrange(len(guide))]  # wrong size; empty now and then
        elif choice < 0.55:
            params[self.rng.choice(["guide_size", "guide_layers"])] = self.rng.choice(GUIDE_VALUES)
        elif choice < 0.6:
            header["guide_width"] = header["guide_height"] = self.rng.choice([10_001, 2**31])
        elif choice < 0.65:
            guide = None
        elif choice < 0.7:
            text = json.dumps(header).replace('"guide_size": 32', '"guide_size": NaN')
            return [text.encode(), PIXELS, PIXELS]
        return [json.dumps(header).encode(), PIXELS] + ([guide] if guide is not None else [])

    def mutated(self) -> list[bytes]:
        header, pixels = self.valid()
        for _ in range(self.rng.randint(1, 3)):
            field = self.rng.choice(FIELDS)
            operation = self.rng.random()
            if operation < 0.25:
                header.pop(field, None)
            elif operation < 0.35 and field == "type":
                header["type"] = self.rng.choice(TYPES)
            elif field == "job":  # keep job ids unique, so an answer is never taken for another's
                header["job"] = self.rng.choice([self.new_job(), self.counter + 10**6, None, [], 1.5, True])
            else:
                header[field] = self.rng.choice(VALUES)
        frames = [json.dumps(header).encode()]
        if pixels is not None or self.rng.random() < 0.1:
            frames.append(pixels if pixels is not None and self.rng.random() < 0.5 else
                          self.rng.choice([*FRAMES.values(), NOT_FINITE]))  # often another format's size
        return frames

    def broken_bytes(self) -> list[bytes]:
        header, pixels = self.valid()
        text = bytearray(json.dumps(header).encode())
        choice = self.rng.random()
        if choice < 0.3:
            del text[self.rng.randrange(len(text)):]
        elif choice < 0.6:
            for _ in range(self.rng.randint(1, 4)):
                text[self.rng.randrange(len(text))] = self.rng.randrange(256)
        else:
            spot = self.rng.randrange(len(text))
            text[spot:spot] = self.rng.choice([b"NaN", b"Infinity", b"\xff\xfe", b"\x00", b",", b"}", b'"'])
        return [bytes(text)] + ([pixels] if pixels is not None else [])

    def wrong_frames(self) -> list[bytes]:
        header, pixels = self.valid()
        frames = [json.dumps(header).encode()]
        choice = self.rng.random()
        if choice < 0.4:
            return frames + [PIXELS] * self.rng.randint(2, 5)  # 3 to 6 frames
        if choice < 0.7 and pixels is not None:
            return frames + [pixels[: self.rng.randrange(len(pixels))] + bytes(self.rng.choice([0, 1, 7]))]
        return frames if pixels is not None else frames + [PIXELS]

    def junk(self) -> list[bytes]:
        choice = self.rng.random()
        if choice < 0.2:
            return [self.rng.randbytes(self.rng.randint(0, 200))]
        if choice < 0.35:
            return [b"[" * 60_000]  # nested too deep for the JSON parser, under the header limit
        if choice < 0.5:
            return [json.dumps({"type": "hello", "pad": "x" * (protocol.MAX_HEADER_BYTES + 1)}).encode()]
        if choice < 0.65:
            return [b'{"type":"dream","job":"nan","width":NaN}', PIXELS]
        if choice < 0.8:
            return [json.dumps(self.rng.choice([[], 1, "hello", None, 1.5])).encode()]
        return [b""]

    # ---- sending and judging -----------------------------------------------------------------------

    def send(self, frames: list[bytes]) -> None:
        """Send one message and wait for its direct answer; AssertionError if none comes."""
        self.client.send_frames(frames)
        self.sent += 1
        expected_job = _job_of(frames[0])
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while (left := deadline - time.monotonic()) > 0:
            message = self.client.receive(left)
            if message is None:
                break
            header, _ = message
            self._note(header)
            if header["type"] in DIRECT and header.get("job") in (expected_job, None):
                if header["type"] == protocol.ACCEPTED:
                    self.open_jobs.append(expected_job)
                self.outcomes[header["type"] + ":" + str(header.get("code", ""))] = \
                    self.outcomes.get(header["type"] + ":" + str(header.get("code", "")), 0) + 1
                return
        raise AssertionError(f"no answer within {REPLY_TIMEOUT_S} s to message {self.sent}: {frames!r:.300}")

    def cancel_open(self) -> None:
        """Cancel a job the backend has: its answer is `cancelled`, or its end if it got there first."""
        job = self.rng.choice(self.open_jobs)
        self.client.cancel(job)
        self.sent += 1
        self.wait_for_end(job)

    def wait_for_end(self, job: Any) -> None:
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while job not in self.ended:
            message = self.client.receive(max(0.0, deadline - time.monotonic()))
            assert message is not None, f"job {job!r} neither cancelled nor ended within {REPLY_TIMEOUT_S} s"
            self._note(message[0])

    def _note(self, header: dict[str, Any]) -> None:
        self.frames += header["type"] == protocol.FRAME
        if header["type"] == protocol.ERROR:
            assert header.get("code") in protocol.ERROR_CODES, header
            assert isinstance(header.get("message"), str) and header["message"], header
        if header["type"] in ENDED and header.get("job") in self.open_jobs:
            self.open_jobs.remove(header["job"])
            self.ended.add(header["job"])


def _job_of(frame: bytes) -> Any:
    """The job id the backend will answer with: the header's, if it is a JSON object that has one."""
    try:
        header = json.loads(frame)
    except (ValueError, RecursionError):
        return None
    return header.get("job") if isinstance(header, dict) else None


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory):
    process = BackendProcess(tmp_path_factory.mktemp("fuzz"), "--max-queue", str(MAX_QUEUE))
    yield process
    process.stop()


def test_fuzz(fuzzed):
    rng = random.Random(SEED)
    with fuzzed.client() as client:
        dream(client, "warm", width=SIDE, height=SIDE, iterations=1, params={"features": {"block1_conv1": 0.05}})
        assert events_until_end(client, "warm")[-1][0]["type"] == "done"  # block1_conv1 traced before measuring
        # The largest guide a request may ask for takes its features at MAX_GUIDE_SIZE: a few hundred MB that the
        # allocator keeps. Reached once before measuring, so what grows after is what the messages leak.
        dream(client, "warm-guided", width=SIDE, height=SIDE, iterations=1, guide=(PIXELS, SIDE, SIDE, 3),
              params={"features": {"block1_conv1": 0.05}, "guide_size": protocol.MAX_GUIDE_SIZE})
        assert events_until_end(client, "warm-guided")[-1][0]["type"] == "done"
        before = memory(fuzzed.process.pid)
        fuzzer = Fuzzer(client, rng)
        started = time.monotonic()
        makers = [fuzzer.valid, fuzzer.mutated, fuzzer.broken_bytes, fuzzer.wrong_frames, fuzzer.junk, fuzzer.guided]
        weights = [0.10, 0.45, 0.15, 0.10, 0.10, 0.10]
        while fuzzer.sent < MESSAGES:
            pick = rng.random()
            if pick < 0.015:  # a flood of cancels: of jobs nobody has, and of the backend's own
                for _ in range(rng.randint(5, 40)):
                    if fuzzer.open_jobs and rng.random() < 0.3:
                        fuzzer.cancel_open()
                    else:
                        fuzzer.send([json.dumps(protocol.cancel_request(fuzzer.new_job())).encode()])
                continue
            made = rng.choices(makers, weights)[0]()
            fuzzer.send(made if isinstance(made, list) else protocol.encode(*made))
            if fuzzer.sent // LIVENESS_EVERY != (fuzzer.sent - 1) // LIVENESS_EVERY:
                assert fuzzed.process.poll() is None, "".join(fuzzed.output)
                with fuzzed.client() as probe:
                    assert probe.hello(timeout=REPLY_TIMEOUT_S)["protocol"] == protocol.PROTOCOL_VERSION
        for job in list(fuzzer.open_jobs):  # what is still queued or running is cancelled, and says so
            if job in fuzzer.open_jobs:
                client.cancel(job)
                fuzzer.wait_for_end(job)
        elapsed = time.monotonic() - started
        after = memory(fuzzed.process.pid)
        dream(client, "after-fuzz", width=24, height=16, iterations=2)
        events = events_until_end(client, "after-fuzz")
        dream(client, "guided-after-fuzz", width=24, height=16, iterations=1, guide=(PIXELS, SIDE, SIDE, 3))
        guided = events_until_end(client, "guided-after-fuzz")
    print(f"\nfuzz: {fuzzer.sent} messages in {elapsed:.1f} s, {fuzzer.frames} animation frames; backend RSS "
          f"{before / 2**20:.0f} MB before, "
          f"{after / 2**20:.0f} MB after; answers: {dict(sorted(fuzzer.outcomes.items()))}")
    assert fuzzer.sent >= MESSAGES and elapsed < WALL_LIMIT_S
    assert after - before < MEMORY_GROWTH_LIMIT
    assert events[-1][0]["type"] == "done" and len([e for e in events if e[0]["type"] == "iteration"]) == 2
    assert guided[-1][0]["type"] == "done"
    assert fuzzer.outcomes.get("accepted:", 0) > 50 and fuzzer.outcomes.get("error:queue_full", 0) > 0
    assert fuzzer.frames > 10  # animations were accepted and ran among the rest
    assert fuzzed.process.poll() is None
