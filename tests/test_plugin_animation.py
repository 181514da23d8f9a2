"""The animation plug-in's GIMP-free part (gimp_plugin/deep_dream/frames.py) against the real backend, and a
scripted one for a frame of the wrong size. Its GIMP part is tested in tests/gimp/test_gimp_animation.py."""

from __future__ import annotations

import sys

import pytest

from tests.conftest import ROOT
from tests.test_plugin_logic import ACCEPTED_AND_STARTED, ScriptedBackend, image, run_to_end
from wire.client import Client

sys.path.insert(0, str(ROOT / "gimp_plugin" / "deep_dream"))

import frames  # noqa: E402
import session  # noqa: E402


def test_frame_names_carry_gimps_frame_tags():
    assert frames.frame_name(3, 80) == "Frame 3 (80ms) (replace)"


@pytest.mark.usefixtures("transport")
def test_a_whole_animation_keeps_every_frame_in_order(backend):
    with backend.client() as client:
        job = frames.AnimationSession(client, "anim", 3, 2)
        job.submit_animation(image(), 48, 40, 3, "tiny", 7, 0, zoom=1.1, rotate=3.0, pan=(1.0, 0.0))
        seen: list[session.Progress] = []
        kept: list[session.Kept] = []
        while not job.finished:
            kept += job.poll(0.1)
            seen.append(job.progress)
    assert job.state is session.State.DONE and job.error is None
    assert [k.number for k in kept] == [1, 2, 3] and len({k.pixels for k in kept}) == 3
    assert all((k.width, k.height, k.channels, len(k.pixels)) == (48, 40, 3, 48 * 40 * 3) for k in kept)
    texts = {p.iteration_text for p in seen}
    assert {"Frame 1 of 3, iteration 1 of 2", "Frame 2 of 3, iteration 2 of 2",
            "Frame 3 of 3, iteration 2 of 2"} <= texts
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and 0 < fractions[len(fractions) // 2] < 1
    assert any(p.seconds_left is not None for p in seen)


def test_stop_keeps_the_frames_made(backend):
    with backend.client() as client:
        job = frames.AnimationSession(client, "stopped", 50, 1)
        job.submit_animation(image(), 48, 40, 3, "tiny", 1, 0, zoom=0.95)
        kept: list[session.Kept] = []
        while not kept:
            kept += job.poll(0.1)
        job.stop()
        kept += run_to_end(job, 30)
    assert job.state is session.State.CANCELLED and job.error is None
    assert [k.number for k in kept] == [1] and job.iteration < 50


def test_a_frame_of_the_wrong_size_fails_the_animation():
    frame = {"type": "frame", "frame": 0, "frames": 2, "loss": 1.0, "width": 8, "height": 8, "channels": 3}
    liar = ScriptedBackend({"animate": [*ACCEPTED_AND_STARTED, (frame, bytes(8 * 8 * 3))]})
    try:
        with Client(liar.endpoint) as client:
            job = frames.AnimationSession(client, "liar", 2, 1)
            job.submit_animation(image(), 48, 40, 3, "tiny", None, 0)
            assert run_to_end(job, 10) == []
    finally:
        liar.close()
    assert job.state is session.State.FAILED
    assert job.error.startswith("the backend sent frame 1 as 8×8×3") and "48×40×3" in job.error
