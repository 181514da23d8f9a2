"""Filters ▸ Artistic ▸ Deep Dream Animation…: the layer dreamt into frames, each a layer of a new image.

Why a new image: GIMP's Filters ▸ Animation ▸ Playback and the GIF and WebP exporters ("As animation")
take an image's top-level layers as its frames, bottom first, with the delay and disposal in each
layer's name ("Frame 3 (100ms) (replace)"). Frames added to the source image would make every other
layer a frame too, and frames in a group would be one frame; a new image of frames alone plays and
exports as it is. The source image is not changed at all; the new image is built with its undo off,
so its history starts with the finished animation.

deep_dream.py registers the procedure (create_procedure) and hands run() itself as `plugin`, for the
helpers the two procedures share (pixels, progress, errors). The messages are frames.py's, GIMP-free.
"""

from __future__ import annotations

import traceback
import uuid
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

import choices
import frames
import gi
import precision
import procedures
from gi.repository import Gimp, GObject

from wire import protocol

if TYPE_CHECKING:
    from session import Kept

    from wire.client import Client

PROCEDURE = "python-fu-deep-dream-animation"
TITLE = "Deep Dream Animation"
READWRITE = GObject.ParamFlags.READWRITE


def create_procedure(plugin: Gimp.PlugIn, name: str, run: Any) -> Gimp.Procedure:
    procedure = procedures.filter_procedure(
        plugin, name, run, None, "Deep Dream _Animation…",
        "Dream a layer into an animation (zoom, rotate, pan)",
        "Frame 0 is the layer (or the selected part) dreamt; every next frame is the last one zoomed, turned "
        "and moved, then dreamt again. The frames become the layers of a new image, named with their delay, "
        "ready for Filters ▸ Animation ▸ Playback and for export as an animated GIF or WebP.",
    )
    endpoint = choices.default_endpoint()
    procedures.add_preset_argument(procedure, endpoint)
    procedure.add_int_argument("frames", "_Frames", "Number of frames", 1, protocol.MAX_FRAMES, 12, READWRITE)
    procedure.add_int_argument("iterations", "_Iterations per frame", "Iterations dreamt on each frame", 1, 200, 3,
                               READWRITE)
    procedure.add_double_argument("zoom", "_Zoom", "Zoom per frame about the centre (over 1 zooms in)",
                                  1 / protocol.MAX_ZOOM, protocol.MAX_ZOOM, 1.05, READWRITE)
    procedure.add_double_argument("rotate", "Ro_tate", "Degrees turned per frame, counter-clockwise", -180.0, 180.0,
                                  0.0, READWRITE)
    procedure.add_double_argument("pan-x", "Pan _x", "Pixels moved right per frame", -protocol.MAX_PAN,
                                  protocol.MAX_PAN, 0.0, READWRITE)
    procedure.add_double_argument("pan-y", "Pan _y", "Pixels moved down per frame", -protocol.MAX_PAN,
                                  protocol.MAX_PAN, 0.0, READWRITE)
    procedure.add_double_argument("blend", "Ble_nd", "How much of the moved layer each frame starts from (0 = pure "
                                  "feedback)", 0.0, 1.0, 0.0, READWRITE)
    procedure.add_int_argument("frame-ms", "Frame _delay (ms)", "How long each frame shows when played", 10, 60_000,
                               frames.DEFAULT_FRAME_MS, READWRITE)
    procedure.add_int_argument("max-size", "_Maximum size", "Dream on a copy this long at most (0 = full size)",
                               0, 65536, 0, READWRITE)
    procedure.add_int_argument("seed", "S_eed", "Random seed (0 = random; the same seed, the same animation)", 0,
                               2**31 - 1, 0, READWRITE)
    procedure.add_string_argument("endpoint", "_Backend", "ZeroMQ endpoint of the Deep Dream backend", endpoint,
                                  READWRITE)
    procedure.add_image_return_value("image", "Image", "The new image of frames", True, READWRITE)
    return procedure


def run(plugin: ModuleType, procedure: Gimp.Procedure, run_mode: Gimp.RunMode, image: Gimp.Image,
        drawables: list[Gimp.Drawable], config: Gimp.ProcedureConfig) -> Gimp.ValueArray:
    """The PDB entry point (through deep_dream.py); an exception becomes an EXECUTION_ERROR message."""
    try:
        return animate(plugin, procedure, run_mode, drawables, config)
    except Exception:
        return plugin.finish(procedure, Gimp.PDBStatusType.EXECUTION_ERROR,
                             f"Deep Dream Animation failed unexpectedly:\n{traceback.format_exc()}")


def settings_dialog(GimpUi: ModuleType, procedure: Gimp.Procedure, config: Gimp.ProcedureConfig) -> bool:
    """Every argument of the animation, in the order they were declared."""
    dialog = GimpUi.ProcedureDialog.new(procedure, config, TITLE)
    dialog.fill(None)
    accepted = dialog.run()
    dialog.destroy()
    return accepted


def animate(plugin: ModuleType, procedure: Gimp.Procedure, run_mode: Gimp.RunMode, drawables: list[Gimp.Drawable],
            config: Gimp.ProcedureConfig) -> Gimp.ValueArray:
    problem = plugin.drawable_problem(drawables)
    if problem:
        return plugin.finish(procedure, Gimp.PDBStatusType.CALLING_ERROR, problem)
    source = drawables[0]
    ui_mode = run_mode != Gimp.RunMode.NONINTERACTIVE
    if ui_mode:
        gi.require_version("GimpUi", "3.0")
        from gi.repository import GimpUi

        GimpUi.init("deep_dream")
        if run_mode == Gimp.RunMode.INTERACTIVE and not settings_dialog(GimpUi, procedure, config):
            return plugin.finish(procedure, Gimp.PDBStatusType.CANCEL)
    setting = config.get_property
    endpoint = setting("endpoint")

    found, x, y, width, height = source.mask_intersect()
    if not found:
        return plugin.finish(procedure, Gimp.PDBStatusType.EXECUTION_ERROR,
                             "the selection does not overlap the layer: select a part of it, or nothing")
    channels = 4 if source.has_alpha() else 3
    pixels = plugin.read_pixels(source, (x, y, width, height), channels, protocol.U8)  # frames are 8-bit
    result = FramesImage(plugin, source, width, height, setting("frame-ms"), show=ui_mode)

    def start(client: Client, hello: dict) -> tuple[frames.AnimationSession, Callable[[Kept], object]]:
        job = frames.AnimationSession(client, uuid.uuid4().hex, setting("frames"), setting("iterations"))
        job.submit_animation(pixels, width, height, channels, setting("preset"), setting("seed") or None,
                             setting("max-size"), zoom=setting("zoom"), rotate=setting("rotate"),
                             pan=(setting("pan-x"), setting("pan-y")), blend=setting("blend"))
        return job, result.add

    progress = plugin.ProgressWindow() if ui_mode else plugin.StatusProgress()
    status, message = plugin.talk(endpoint, progress, start, result.close)
    values = plugin.finish(procedure, status, message)
    if status == Gimp.PDBStatusType.SUCCESS:  # scripts get the image of frames (GIMP's palette-offset does so)
        values.remove(1)
        values.insert(1, GObject.Value(Gimp.Image, result.image))
    return values


class FramesImage:
    """The new image the frames go into, made when the first frame arrives (a run that fails before
    changes nothing); each frame a top-level layer above the last, so the first plays first."""

    def __init__(self, plugin: ModuleType, source: Gimp.Drawable, width: int, height: int, frame_ms: int,
                 show: bool) -> None:
        self.plugin = plugin
        self.base_type = source.get_image().get_base_type()
        self.width, self.height = width, height
        self.frame_ms = frame_ms
        self.show = show
        self.image: Gimp.Image | None = None

    def add(self, kept: Kept) -> None:
        if self.image is None:
            self.image = Gimp.Image.new(self.width, self.height, self.base_type)
            self.image.undo_disable()  # its history starts with the finished animation
        grey = self.base_type == Gimp.ImageBaseType.GRAY
        kind = {(False, 3): Gimp.ImageType.RGB_IMAGE, (False, 4): Gimp.ImageType.RGBA_IMAGE,
                (True, 3): Gimp.ImageType.GRAY_IMAGE, (True, 4): Gimp.ImageType.GRAYA_IMAGE}[grey, kept.channels]
        layer = Gimp.Layer.new(self.image, frames.frame_name(kept.number, self.frame_ms), self.width, self.height,
                               kind, 100.0, Gimp.LayerMode.NORMAL)
        self.image.insert_layer(layer, None, 0)
        self.plugin.write(layer, precision.gegl_format(kept.channels, protocol.U8), kept.pixels)
        if self.show and kept.number == 1:
            Gimp.Display.new(self.image)
        Gimp.displays_flush()

    def close(self) -> None:
        if self.image is not None:
            self.image.undo_enable()
