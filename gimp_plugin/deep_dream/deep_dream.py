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
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio, GLib, GObject  # noqa: E402

PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(PLUGIN_DIR, "_vendor"), PLUGIN_DIR]  # a vendored pyzmq, then wire/ and our modules

import animation  # noqa: E402  (the second procedure: Deep Dream Animation)
import choices  # noqa: E402  (standard library only: the client is imported in dream)
import estimate  # noqa: E402
import guide_layer  # noqa: E402
import layers  # noqa: E402
import precision  # noqa: E402  (standard library only)
import procedures  # noqa: E402
import recipes  # noqa: E402

from wire import protocol  # noqa: E402  (standard library only)
from wire.recipe import RecipeError  # noqa: E402

if TYPE_CHECKING:  # annotations only: session and the client are imported when a run needs them
    from session import DreamSession, Kept, Progress

    from wire.client import Client

PROCEDURE = "python-fu-deep-dream"
AGAIN = "python-fu-deep-dream-again"
HELP_DOMAIN = "deep-dream-gimp"  # our pages, not GIMP's manual: help/<language>/gimp-help.xml maps PROCEDURE
TITLE = "Deep Dream"
POLL_S = 0.05  # the longest the window goes without being redrawn
MASK_FORMAT = "Y float"  # read and written alike, so the selection's values come back exactly
READWRITE = GObject.ParamFlags.READWRITE


class DeepDream(Gimp.PlugIn):
    def do_set_i18n(self, name: str) -> bool:
        return False

    def do_query_procedures(self) -> list[str]:
        # GIMP takes a help domain only while it queries a plug-in (then keeps it in pluginrc); the procedure
        # itself is registered by init, below.
        self.set_help_domain(HELP_DOMAIN, Gio.File.new_for_path(os.path.join(PLUGIN_DIR, "help")))
        return []

    def do_init_procedures(self) -> list[str]:
        # init, not query: GIMP asks at every start instead of caching the answer until the plug-in file
        # changes, so the preset list follows the user's presets.
        return [PROCEDURE, AGAIN, animation.PROCEDURE]

    def do_create_procedure(self, name: str) -> Gimp.Procedure:
        if name == AGAIN:
            return again_procedure(self, name)
        if name == animation.PROCEDURE:
            return animation.create_procedure(self, name, run_animation)
        procedure = procedures.filter_procedure(
            self, name, run, None, "Deep _Dream…",
            "Let a picture-recognition network dream patterns, eyes and swirls into a layer",
            "Sends the layer (or the selected part of it) to the Deep Dream backend, which strengthens what a "
            "picture-recognition network sees in it, and adds each round of dreaming (iteration) as a layer of "
            "a new group above it. The backend is started if it is not running.",
        )

        # Labels say what 0 means and the unit; mnemonics avoid the dialog's buttons' (_OK, _Cancel, _Help,
        # _Reset, _Save Settings, _Load Saved Settings) and each other's.
        endpoint = choices.default_endpoint()
        procedures.add_preset_argument(procedure, endpoint)
        procedure.add_int_argument("iterations", "_Iterations", "Rounds of dreaming; each one becomes a layer",
                                   1, 200, 10, READWRITE)
        procedure.add_int_argument("keep-every", "_Keep every Nth iteration as a layer",
                                   "Keep every N-th iteration as a layer (and the last)", 1, 200, 1, READWRITE)
        procedure.add_int_argument("max-size", "_Max. size in pixels (0 = full size)",
                                   "Dream on a copy whose longer side is at most this many pixels (0 = full size)",
                                   0, 65536, 0, READWRITE)
        procedure.add_int_argument("octaves", "Si_zes dreamt at (0 = the preset's own)",
                                   "Dream at this many sizes (octaves), smallest first, carrying the detail up "
                                   "(0 = the preset's own; 1 = the picture's size only)", 0, protocol.MAX_OCTAVES,
                                   0, READWRITE)
        procedure.add_double_argument("octave-scale", "Size ra_tio between them (0 = the preset's own)",
                                      "Size ratio between neighbouring octaves, over 1 (0 = the preset's own)",
                                      0.0, protocol.MAX_OCTAVE_SCALE, 0.0, READWRITE)
        procedure.add_int_argument("seed", "Ra_ndom seed (0 = random)",
                                   "Seed of the small random shifts the dream makes; the same seed dreams the "
                                   "same again (0 = random)", 0, 2**31 - 1, 0, READWRITE)
        procedure.add_string_argument("endpoint", "_Backend address", "Where the Deep Dream backend listens (its "
                                      "ZeroMQ endpoint, e.g. tcp://127.0.0.1:5570)",
                                      endpoint, READWRITE)
        procedure.add_layer_argument(guide_layer.ARGUMENT, "_Guide (none = unguided)", "Dream toward this layer's "
                                     "features: any layer of any open image; none = an ordinary dream", True,
                                     READWRITE)
        return procedure


def again_procedure(plugin: Gimp.PlugIn, name: str) -> Gimp.Procedure:
    procedure = procedures.filter_procedure(
        plugin, name, run, dream_again, "Deep Dream _Again",
        "Dream a Deep Dream layer again from its recipe",
        "Every layer Deep Dream makes carries its recipe (preset, settings, seed, iteration). Select one: its "
        "source layer is dreamt again with that recipe into a new group above the source, the same picture on "
        "the same backend and weights.",
    )
    procedure.add_string_argument("endpoint", "_Backend", "ZeroMQ endpoint of the Deep Dream backend",
                                  choices.default_endpoint(), READWRITE)
    return procedure


# ---- running --------------------------------------------------------------------------------------


def run(procedure: Gimp.Procedure, run_mode: Gimp.RunMode, image: Gimp.Image, drawables: list[Gimp.Drawable],
        config: Gimp.ProcedureConfig, data: object) -> Gimp.ValueArray:
    """The PDB entry point (of Deep Dream Again too: data is then dream_again). An exception must not escape:
    GIMP would only report "no return values"."""
    try:
        return (data if callable(data) else dream)(procedure, run_mode, image, drawables, config)
    except Exception:
        return finish(procedure, Gimp.PDBStatusType.EXECUTION_ERROR,
                      f"Deep Dream failed unexpectedly:\n{traceback.format_exc()}")


def run_animation(procedure: Gimp.Procedure, run_mode: Gimp.RunMode, image: Gimp.Image,
                  drawables: list[Gimp.Drawable], config: Gimp.ProcedureConfig, data: object) -> Gimp.ValueArray:
    """Deep Dream Animation's entry point: animation.py, with this module's shared helpers."""
    return animation.run(sys.modules[__name__], procedure, run_mode, image, drawables, config)


def finish(procedure: Gimp.Procedure, status: Gimp.PDBStatusType, message: str | None = None) -> Gimp.ValueArray:
    return procedure.new_return_values(status, GLib.Error(message) if message else GLib.Error())


def dream(procedure: Gimp.Procedure, run_mode: Gimp.RunMode, image: Gimp.Image, drawables: list[Gimp.Drawable],
          config: Gimp.ProcedureConfig) -> Gimp.ValueArray:
    problem = drawable_problem(drawables)
    if problem:
        return finish(procedure, Gimp.PDBStatusType.CALLING_ERROR, problem)
    source = drawables[0]
    found, x, y, width, height = source.mask_intersect()
    if not found:
        return finish(procedure, Gimp.PDBStatusType.EXECUTION_ERROR,
                      "the selection does not overlap the layer: select a part of it, or nothing")

    ui_mode = run_mode != Gimp.RunMode.NONINTERACTIVE
    if ui_mode:
        gi.require_version("GimpUi", "3.0")
        from gi.repository import GimpUi

        GimpUi.init("deep_dream")
        if run_mode == Gimp.RunMode.INTERACTIVE and not settings_dialog(GimpUi, procedure, config, width, height):
            return finish(procedure, Gimp.PDBStatusType.CANCEL)
    preset = config.get_property("preset")
    iterations = config.get_property("iterations")
    try:
        params = choices.octave_params(config.get_property("octaves"), config.get_property("octave-scale"))
    except ValueError as exc:
        return finish(procedure, Gimp.PDBStatusType.CALLING_ERROR, str(exc))
    plan = recipes.Plan(preset, iterations, config.get_property("keep-every"), config.get_property("seed") or None,
                        config.get_property("max-size"), params)
    return dream_area(procedure, image, source, (x, y, width, height), plan, config.get_property("endpoint"),
                      ui_mode, guided=guide_of(config.get_property(guide_layer.ARGUMENT)))


def dream_again(procedure: Gimp.Procedure, run_mode: Gimp.RunMode, image: Gimp.Image,
                drawables: list[Gimp.Drawable], config: Gimp.ProcedureConfig) -> Gimp.ValueArray:
    """Deep Dream Again: the selected result layer's source, dreamt again with its recipe."""
    problem = drawable_problem(drawables)
    if problem:
        return finish(procedure, Gimp.PDBStatusType.CALLING_ERROR, problem)
    parasite = drawables[0].get_parasite(recipes.PARASITE)
    try:
        made = recipes.read(bytes(parasite.get_data()) if parasite else None, drawables[0].get_name())
        source = image.get_layer_by_tattoo(recipes.source_tattoo(made))
        if source is None or drawable_problem([source]):
            raise RecipeError(recipes.missing_source(made))
        area = recipes.source_area(made, source.get_width(), source.get_height())
        guided = find_guide(made) if made.guide else None
    except RecipeError as exc:
        return finish(procedure, Gimp.PDBStatusType.CALLING_ERROR, str(exc))
    ui_mode = run_mode != Gimp.RunMode.NONINTERACTIVE
    if ui_mode:
        gi.require_version("GimpUi", "3.0")
        from gi.repository import GimpUi

        GimpUi.init("deep_dream")
    return dream_area(procedure, image, source, area, recipes.again(made), config.get_property("endpoint"), ui_mode,
                      made, guided)


Guided = tuple[guide_layer.Guide, dict]  # the guide's pixels as sent, and what a recipe says of it


def guide_of(layer: Gimp.Layer | None) -> Guided | None:
    """A guide layer's pixels (guide_layer.read_guide) and its recipe record; None for no guide."""
    guide = guide_layer.read_guide(layer, Gegl)
    if guide is None:
        return None
    pixels, width, height, _ = guide
    return guide, recipes.guide_record(layer.get_name(), layer.get_tattoo(), layer.get_image().get_name(), width,
                                       height, pixels)


def find_guide(made: recipes.Recipe) -> Guided:
    """The layer a recipe was guided by, in any open image (found by its tattoo, checked by its pixels)."""
    for candidate in Gimp.get_images():
        layer = candidate.get_layer_by_tattoo(made.guide.get("tattoo", 0)) if made.guide.get("tattoo") else None
        if layer is not None and drawable_problem([layer]) is None:
            guided = guide_of(layer)
            if guided is not None and guided[1]["sha256"] == made.guide.get("sha256"):
                return guided
    raise RecipeError(recipes.missing_guide(made))


def dream_area(procedure: Gimp.Procedure, image: Gimp.Image, source: Gimp.Drawable,
               area: tuple[int, int, int, int], plan: recipes.Plan, endpoint: str, ui_mode: bool,
               replayed: recipes.Recipe | None = None, guided: Guided | None = None) -> Gimp.ValueArray:
    """Dream `area` of the layer (x, y, width, height in it) as `plan` says; each kept
    iteration becomes a layer carrying its recipe. `replayed`: the recipe dreamt again, checked against this
    backend and source. `guided`: a guide layer's pixels and record (guide_of), or None."""
    try:  # without pyzmq the client falls back to wire/zmtp.py: only missing files of ours fail here
        import session
    except ImportError as exc:
        return finish(procedure, Gimp.PDBStatusType.EXECUTION_ERROR,
                      f"Deep Dream's plug-in files are incomplete ({exc}): run install.py again")

    x, y, width, height = area
    channels = 4 if source.has_alpha() else 3
    result = Result(image, source, (x, y, width, height), plan.preset)
    guide, guide_record = guided or (None, None)

    def start(client: Client, hello: dict) -> tuple[DreamSession, Callable[[Kept], object]]:
        # The layer at its own precision (8-bit, 16-bit or float), if this backend takes it.
        sample_format = precision.wire_format(image.get_precision().value_nick, hello.get("formats"))
        pixels = read_pixels(source, (x, y, width, height), channels, sample_format)
        dreamt = recipes.source_record(source.get_name(), source.get_tattoo(),
                                       (source.get_width(), source.get_height()), (x, y, width, height), pixels)
        stamp = recipes.Stamp(plan, dreamt, hello, guide_record)
        for warning in replayed.warnings(hello, pixels, guide and guide[0]) if replayed else []:
            Gimp.message(f"{TITLE} Again: {warning}")
        speed = hello.get("speed")
        estimate.save_speed(speed)  # for the next dialog, before a backend runs
        octaves, scale = choices.effective_octaves(choices.preset_info(client.presets().get(plan.preset)),
                                                   plan.params)
        expected = estimate.Estimate.of(width, height, plan.max_size, octaves, scale, plan.iterations, speed)
        time_left = session.TimeLeft(plan.iterations, evaluations_per_iteration=expected.evaluations_per_iteration,
                                     estimate=expected.seconds, weights=expected.megapixels)
        job = session.DreamSession(client, uuid.uuid4().hex, plan.iterations, plan.keep_every, time_left=time_left)
        job.submit(pixels, width, height, channels, plan.preset, plan.seed, plan.max_size, plan.params,
                   plan.schedule, sample_format=sample_format, guide=guide)
        return job, lambda kept: attach_recipe(result.add(kept), stamp.text(job, kept.number))

    status, message = talk(endpoint, ProgressWindow() if ui_mode else StatusProgress(), start, result.close)
    return finish(procedure, status, message)


Start = Callable[["Client", dict], tuple["DreamSession", Callable[["Kept"], object]]]


def talk(endpoint: str, progress: ProgressWindow | StatusProgress, start: Start,
         close: Callable[[], None]) -> tuple[Gimp.PDBStatusType, str | None]:
    """Connect to the backend (starting it if need be), `start` a job with the client and the backend's hello
    (it gives the job and what to do with each kept result), follow the job to its end with progress and Stop,
    then `close` the result and the progress: the status and message the procedure returns. Dreams and
    animations alike."""
    import launcher
    import session

    from wire.client import TRANSPORT_ERRORS, BackendError, Client

    status, message = Gimp.PDBStatusType.SUCCESS, None
    try:
        with Client(endpoint) as client:
            progress.status(f"Connecting to the backend at {endpoint}…")
            hello = launcher.connect(client, Path(PLUGIN_DIR, launcher.LAUNCH_FILE), progress.status,
                                     progress.pause).hello
            job, add = start(client, hello)
            while not job.finished:
                for kept in job.poll(POLL_S):
                    add(kept)
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
        close()
        progress.close()
    return status, message


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


def read_pixels(source: Gimp.Drawable, area: tuple[int, int, int, int], channels: int, sample_format: str) -> bytes:
    """The area's pixels as the wire wants them: sRGB-encoded RGB(A) in that sample format, little-endian."""
    pixels = source.get_buffer().get(Gegl.Rectangle.new(*area), 1.0, precision.gegl_format(channels, sample_format),
                                     Gegl.AbyssPolicy.CLAMP)
    return precision.swap_to_wire(pixels, sample_format)


def settings_dialog(GimpUi: ModuleType, procedure: Gimp.Procedure, config: Gimp.ProcedureConfig, width: int,
                    height: int) -> bool:
    """Preset (and what it does) and iterations first, with the time the run will take; the rest under
    Advanced. The description and the estimate follow the settings as they change."""
    endpoint = config.get_property("endpoint")
    presets = choices.presets(endpoint)
    speed, cached = estimate.fetch_speed(endpoint), False
    if speed is None:
        speed, cached = estimate.load_speed(), True
    else:
        estimate.save_speed(speed)

    dialog = GimpUi.ProcedureDialog.new(procedure, config, TITLE)
    description = dialog.get_label("preset-description", "", False, False)
    time_label = dialog.get_label("estimate", "", False, False)
    for label in (description, time_label):
        label.set_line_wrap(True)
        label.set_max_width_chars(48)
        label.set_xalign(0.0)
    dialog.get_label("advanced-title", "_Advanced", False, True)
    dialog.fill_box("advanced-box", ["keep-every", "max-size", "octaves", "octave-scale", "seed", "endpoint"])
    dialog.fill_expander("advanced", "advanced-title", False, "advanced-box")

    def explain(*_: object) -> None:
        info = presets.get(config.get_property("preset"), choices.PresetInfo())
        description.set_text(info.description)
        try:
            octaves, scale = choices.effective_octaves(info, choices.octave_params(
                config.get_property("octaves"), config.get_property("octave-scale")))
        except ValueError as exc:
            time_label.set_text(str(exc))
            return
        expected = estimate.Estimate.of(width, height, config.get_property("max-size"), octaves, scale,
                                        config.get_property("iterations"), speed)
        time_label.set_text(estimate.estimate_text(expected.seconds, cached, width, height))

    explain()
    config.connect("notify", explain)
    dialog.fill(["preset", "preset-description", "iterations", "estimate", guide_layer.ARGUMENT, "advanced"])
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

    def add(self, kept: Kept) -> Gimp.Layer:
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
        # At the precision it was dreamt in (the image's): GEGL converts grey and linear data.
        write(layer, precision.gegl_format(kept.channels, kept.sample_format),
              precision.swap_to_wire(kept.pixels, kept.sample_format))
        if self.mask is not None:
            layer.set_edit_mask(False)  # a new mask makes itself the layer's active drawable
        self.image.set_selected_layers([layer])  # the newest result is what the display shows and Repeat works on
        Gimp.displays_flush()
        return layer

    def close(self) -> None:
        if self.group is not None:
            self.image.undo_group_end()


def attach_recipe(layer: Gimp.Layer, text: str | None) -> None:
    """The recipe as a persistent parasite: saved in the XCF, read by Deep Dream Again."""
    if text is not None:
        layer.attach_parasite(Gimp.Parasite.new(recipes.PARASITE, Gimp.PARASITE_PERSISTENT, text.encode()))


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
        for name in ("status", "iteration", "evaluation", "time"):
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
