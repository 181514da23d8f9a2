#!/usr/bin/env python3
"""Deep Dream for GIMP: dream a layer with the Deep Dream backend; every kept iteration becomes a layer.

The backend (its own Python, with TensorFlow) does the dreaming. This plug-in reads the layer's pixels,
sends them with wire/client.py over ZeroMQ (pyzmq, or wire/zmtp.py where GIMP's Python cannot load
pyzmq) and turns the iterations that come back into layers of one group above the source, in one undo
step. GIMP-free parts live next to this file and are unit-tested
on their own: choices.py (the preset list), launcher.py (finding or starting the backend), session.py
(one dream's messages, progress and time left) and layers.py (which iterations to keep, names).
"""

from __future__ import annotations

import os
import sys
import time
import traceback
import uuid
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, GLib, GObject  # noqa: E402

PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(PLUGIN_DIR, "_vendor"), PLUGIN_DIR]  # a vendored pyzmq, then wire/ and our modules

import choices  # noqa: E402  (standard library only: the client is imported in dream)
import layers  # noqa: E402

from wire import protocol  # noqa: E402  (standard library only)

if TYPE_CHECKING:  # annotations only: session is imported in dream()
    from session import Kept, Progress

PROCEDURE = "python-fu-deep-dream"
TITLE = "Deep Dream"
POLL_S = 0.05  # the longest the window goes without being redrawn
MASK_FORMAT = "Y float"  # read and written alike, so the selection's values come back exactly
READWRITE = GObject.ParamFlags.READWRITE


class DeepDream(Gimp.PlugIn):
    def do_set_i18n(self, name: str) -> bool:
        return False

    def do_init_procedures(self) -> list[str]:
        # init, not query: GIMP asks at every start instead of caching the answer until the plug-in file
        # changes, so the preset list follows the user's presets.
        return [PROCEDURE]

    def do_create_procedure(self, name: str) -> Gimp.Procedure:
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run, None)
        procedure.set_image_types("RGB*, GRAY*")
        procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        procedure.set_menu_label("Deep _Dream…")
        procedure.add_menu_path("<Image>/Filters/Artistic")
        procedure.set_documentation(
            "Dream a layer with VGG16 (Deep Dream)",
            "Sends the layer (or the selected part of it) to the Deep Dream backend and adds the dreamt "
            "iterations as layers of a new group above it. The backend is started if it is not running.",
            name,
        )
        procedure.set_attribution("Deep Dream for GIMP", "Deep Dream for GIMP contributors", "2025")

        endpoint = choices.default_endpoint()
        preset_choice = Gimp.Choice.new()
        for index, preset in enumerate(choices.preset_names(endpoint)):
            preset_choice.add(preset, index, preset, "")
        procedure.add_choice_argument("preset", "_Preset", "Dream preset: the built-ins and the user's own",
                                      preset_choice, choices.DEFAULT_PRESET, READWRITE)
        procedure.add_int_argument("iterations", "_Iterations", "Number of iterations", 1, 200, 10, READWRITE)
        procedure.add_int_argument("keep-every", "_Keep every", "Keep every k-th iteration as a layer (and the last)",
                                   1, 200, 1, READWRITE)
        procedure.add_int_argument("max-size", "_Maximum size", "Dream on a copy this long at most (0 = full size)",
                                   0, 65536, 0, READWRITE)
        procedure.add_int_argument("octaves", "_Octaves", "Dream at this many scales, smallest first, carrying the "
                                   "detail up (0 = the preset's own; 1 = one scale)", 0, protocol.MAX_OCTAVES, 0,
                                   READWRITE)
        procedure.add_double_argument("octave-scale", "Octave sc_ale", "Size ratio between neighbouring octaves "
                                      "(0 = the preset's own)", 0.0, protocol.MAX_OCTAVE_SCALE, 0.0, READWRITE)
        procedure.add_int_argument("seed", "_Seed", "Random seed for the jitter (0 = random)", 0, 2**31 - 1, 0,
                                   READWRITE)
        procedure.add_string_argument("endpoint", "_Backend", "ZeroMQ endpoint of the Deep Dream backend", endpoint,
                                      READWRITE)
        return procedure


# ---- running --------------------------------------------------------------------------------------


def run(procedure: Gimp.Procedure, run_mode: Gimp.RunMode, image: Gimp.Image, drawables: list[Gimp.Drawable],
        config: Gimp.ProcedureConfig, data: object) -> Gimp.ValueArray:
    """The PDB entry point. An exception must not escape: GIMP would only report "no return values"."""
    try:
        return dream(procedure, run_mode, image, drawables, config)
    except Exception:
        return finish(procedure, Gimp.PDBStatusType.EXECUTION_ERROR,
                      f"Deep Dream failed unexpectedly:\n{traceback.format_exc()}")


def finish(procedure: Gimp.Procedure, status: Gimp.PDBStatusType, message: str | None = None) -> Gimp.ValueArray:
    return procedure.new_return_values(status, GLib.Error(message) if message else GLib.Error())


def dream(procedure: Gimp.Procedure, run_mode: Gimp.RunMode, image: Gimp.Image, drawables: list[Gimp.Drawable],
          config: Gimp.ProcedureConfig) -> Gimp.ValueArray:
    problem = drawable_problem(drawables)
    if problem:
        return finish(procedure, Gimp.PDBStatusType.CALLING_ERROR, problem)
    source = drawables[0]

    ui_mode = run_mode != Gimp.RunMode.NONINTERACTIVE
    if ui_mode:
        gi.require_version("GimpUi", "3.0")
        from gi.repository import GimpUi

        GimpUi.init("deep_dream")
        if run_mode == Gimp.RunMode.INTERACTIVE and not settings_dialog(GimpUi, procedure, config):
            return finish(procedure, Gimp.PDBStatusType.CANCEL)
    preset = config.get_property("preset")
    iterations = config.get_property("iterations")
    try:
        params = choices.octave_params(config.get_property("octaves"), config.get_property("octave-scale"))
    except ValueError as exc:
        return finish(procedure, Gimp.PDBStatusType.CALLING_ERROR, str(exc))
    endpoint = config.get_property("endpoint")

    try:  # without pyzmq the client falls back to wire/zmtp.py: only missing files of ours fail here
        import launcher
        import session

        from wire.client import TRANSPORT_ERRORS, BackendError, Client
    except ImportError as exc:
        return finish(procedure, Gimp.PDBStatusType.EXECUTION_ERROR,
                      f"Deep Dream's plug-in files are incomplete ({exc}): run install.py again")

    found, x, y, width, height = source.mask_intersect()
    if not found:
        return finish(procedure, Gimp.PDBStatusType.EXECUTION_ERROR,
                      "the selection does not overlap the layer: select a part of it, or nothing")
    channels = 4 if source.has_alpha() else 3
    pixels = source.get_buffer().get(Gegl.Rectangle.new(x, y, width, height), 1.0, pixel_format(channels),
                                     Gegl.AbyssPolicy.CLAMP)
    result = Result(image, source, (x, y, width, height), preset)
    progress = ProgressWindow() if ui_mode else StatusProgress()
    status, message = Gimp.PDBStatusType.SUCCESS, None
    try:
        with Client(endpoint) as client:
            progress.status(f"Connecting to the backend at {endpoint}…")
            launcher.connect(client, Path(PLUGIN_DIR, launcher.LAUNCH_FILE), progress.status, progress.pause)
            job = session.DreamSession(client, uuid.uuid4().hex, iterations, config.get_property("keep-every"))
            job.submit(pixels, width, height, channels, preset, config.get_property("seed") or None,
                       config.get_property("max-size"),
                       params)
            while not job.finished:
                for kept in job.poll(POLL_S):
                    result.add(kept)
                progress.update(job.progress)
                if progress.stop_requested:
                    job.stop()
            if job.state is session.State.CANCELLED:
                status = Gimp.PDBStatusType.CANCEL
            elif job.state is session.State.FAILED:
                status, message = Gimp.PDBStatusType.EXECUTION_ERROR, job.error
    except launcher.Stopped:
        status = Gimp.PDBStatusType.CANCEL
    except (BackendError, launcher.LaunchError) as exc:
        status, message = Gimp.PDBStatusType.EXECUTION_ERROR, str(exc)
    except TRANSPORT_ERRORS as exc:
        status, message = Gimp.PDBStatusType.EXECUTION_ERROR, f"cannot use the endpoint {endpoint!r}: {exc}"
    finally:
        result.close()
        progress.close()
    return finish(procedure, status, message)


def drawable_problem(drawables: list[Gimp.Drawable]) -> str | None:
    """Why the drawables can't be dreamt (None when they can): exactly one plain layer."""
    if len(drawables) != 1:
        return f"Deep Dream works on one layer: select exactly one ({len(drawables)} are selected)"
    item = drawables[0]
    for test, kind in ((item.is_group_layer, "a layer group"), (item.is_layer_mask, "a layer mask"),
                       (item.is_channel, "a channel")):
        if test():
            return f"{item.get_name()!r} is {kind}: Deep Dream works on a plain layer"
    if not item.is_layer():
        return f"{item.get_name()!r} is not a layer: Deep Dream works on a plain layer"
    return None


def pixel_format(channels: int) -> str:
    """8-bit sRGB, as the wire format wants it: GEGL converts grey and other precisions."""
    return "R'G'B'A u8" if channels == 4 else "R'G'B' u8"


def settings_dialog(GimpUi: ModuleType, procedure: Gimp.Procedure, config: Gimp.ProcedureConfig) -> bool:
    dialog = GimpUi.ProcedureDialog.new(procedure, config, TITLE)
    dialog.fill(None)
    accepted = dialog.run()
    dialog.destroy()
    return accepted


# ---- the result: one layer group, one undo step ----------------------------------------------------


class Result:
    """The layer group the kept iterations go into. It is made when the first one arrives, so a run that
    fails before any changes nothing; everything it adds is one undo step."""

    def __init__(self, image: Gimp.Image, source: Gimp.Drawable, area: tuple[int, int, int, int],
                 preset: str) -> None:
        self.image = image
        self.source = source
        self.preset = preset
        x, y, self.width, self.height = area
        _, source_x, source_y = source.get_offsets()
        self.offsets = (source_x + x, source_y + y)
        # The selection as it is now: the user may change it while the dream runs.
        self.mask: bytes | None = None
        if not Gimp.Selection.is_empty(image):
            self.mask = image.get_selection().get_buffer().get(
                Gegl.Rectangle.new(*self.offsets, self.width, self.height), 1.0, MASK_FORMAT, Gegl.AbyssPolicy.NONE)
        self.group: Gimp.GroupLayer | None = None

    def add(self, kept: Kept) -> None:
        if self.group is None:
            self.image.undo_group_start()
            self.group = Gimp.GroupLayer.new(self.image, layers.group_name(self.preset))
            self.image.insert_layer(self.group, self.source.get_parent(), self.image.get_item_position(self.source))
        grey = self.image.get_base_type() == Gimp.ImageBaseType.GRAY
        layer = Gimp.Layer.new(self.image, layers.layer_name(self.preset, kept.number), self.width, self.height,
                               Gimp.ImageType.GRAYA_IMAGE if grey else Gimp.ImageType.RGBA_IMAGE, 100.0,
                               Gimp.LayerMode.NORMAL)
        if self.mask is not None:
            # Before the layer joins the image, so that the mask is part of the layer's own undo step: an undo step
            # of its own would make the mask the active drawable again on Redo (and Filters ▸ Repeat refuses masks).
            mask = layer.create_mask(Gimp.AddMaskType.WHITE)
            layer.add_mask(mask)
            write(mask, MASK_FORMAT, self.mask)
        self.image.insert_layer(layer, self.group, 0)  # newest on top
        layer.set_offsets(*self.offsets)
        write(layer, pixel_format(kept.channels), kept.pixels)
        if self.mask is not None:
            layer.set_edit_mask(False)  # a new mask makes itself the layer's active drawable
        self.image.set_selected_layers([layer])  # the newest result is what the display shows and Repeat works on
        Gimp.displays_flush()

    def close(self) -> None:
        if self.group is not None:
            self.image.undo_group_end()


def write(drawable: Gimp.Drawable, format_name: str, pixels: bytes) -> None:
    buffer = drawable.get_buffer()
    extent = buffer.get_extent()
    buffer.set(extent, format_name, pixels)
    buffer.flush()
    drawable.update(0, 0, extent.width, extent.height)


# ---- progress: the plug-in's own window when interactive, GIMP's progress otherwise ---------------


class ProgressWindow:
    """Progress with a Stop button of our own: GIMP's status-bar Cancel kills a plug-in outright, with no
    chance to cancel the backend's job or close the undo group."""

    def __init__(self) -> None:
        gi.require_version("Gtk", "3.0")
        from gi.repository import GimpUi, Gtk

        self.Gtk = Gtk
        self.stop_requested = False
        self.dialog = GimpUi.Dialog(title=TITLE, role="deep-dream-progress")
        self.dialog.add_button("_Stop", Gtk.ResponseType.CANCEL)
        self.dialog.connect("response", self.on_stop)
        self.dialog.connect("delete-event", self.on_stop)
        box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=6, border_width=12)
        self.dialog.get_content_area().add(box)
        self.labels: dict[str, Gtk.Label] = {}
        for name in ("status", "iteration", "evaluation", "loss", "time"):
            self.labels[name] = Gtk.Label(xalign=0.0)
            box.pack_start(self.labels[name], False, False, 0)
            if name == "status":
                self.bar = Gtk.ProgressBar()
                self.bar.set_size_request(360, -1)
                box.pack_start(self.bar, False, False, 0)
        GimpUi.window_set_transient(self.dialog)
        self.dialog.show_all()
        self.pump()

    def on_stop(self, *args: object) -> bool:
        self.stop_requested = True
        self.labels["status"].set_text("Stopping…")
        return True  # keep the window until the run ends

    def pump(self) -> None:
        while self.Gtk.events_pending():
            self.Gtk.main_iteration_do(False)

    def pause(self, seconds: float) -> bool:
        self.bar.pulse()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.stop_requested:
            self.pump()
            time.sleep(POLL_S)
        return not self.stop_requested

    def status(self, text: str) -> None:
        self.labels["status"].set_text(text)
        self.bar.pulse()
        self.pump()

    def update(self, progress: Progress) -> None:
        if not self.stop_requested:
            self.labels["status"].set_text(progress.status)
        self.bar.set_fraction(progress.fraction)
        self.labels["iteration"].set_text(progress.iteration_text)
        self.labels["evaluation"].set_text(progress.evaluation_text)
        self.labels["loss"].set_text(progress.loss_text)
        self.labels["time"].set_text(progress.time_left_text)
        self.pump()

    def close(self) -> None:
        self.dialog.destroy()
        self.pump()


class StatusProgress:
    """Non-interactive progress through GIMP (a no-op in batch mode); nobody can press Stop."""

    stop_requested = False

    def __init__(self) -> None:
        Gimp.progress_init(TITLE)
        self.shown: tuple[str, float] | None = None

    def status(self, text: str) -> None:
        Gimp.progress_set_text(text)

    def pause(self, seconds: float) -> bool:
        time.sleep(seconds)
        return True

    def update(self, progress: Progress) -> None:
        text = f"{TITLE}: {progress.iteration_text.lower()}, {progress.time_left_text}"
        if (text, progress.fraction) != self.shown:  # each call is a round trip to GIMP: only changes
            self.shown = (text, progress.fraction)
            Gimp.progress_set_text(text)
            Gimp.progress_update(progress.fraction)

    def close(self) -> None:
        Gimp.progress_end()


Gimp.main(DeepDream.__gtype__, sys.argv)
