"""Runs INSIDE GIMP 3 (gimp-console's python-fu-eval, fed on stdin): every scenario of test_gimp_plugin.py.

It calls python-fu-deep-dream non-interactively on images with structure, saves and reloads XCF files, and
writes what it finds (statuses, messages, layer trees, raw pixels in base64) to a JSON report; the pytest
side judges it. A scenario that raises is recorded with its traceback, so one bug doesn't hide the others.
The settings come from the JSON file named by $DD_TEST_CONFIG (paths inside the chroot).
"""

import base64
import json
import os
import shutil
import signal
import threading
import time
import traceback

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio  # noqa: E402

PROCEDURE = "python-fu-deep-dream"
CONFIG = json.loads(open(os.environ["DD_TEST_CONFIG"]).read())
OUT = CONFIG["out"]
PLUGIN_DIR = os.path.join(Gimp.directory(), "plug-ins", "deep_dream")
LAUNCH_FILE = os.path.join(PLUGIN_DIR, "backend.json")


# ---- test images ----------------------------------------------------------------------------------


def structured(width, height, channels, seed=0):
    """Gradients, stripes and deterministic noise (offset, flip and channel bugs show); alpha a ramp."""
    data = bytearray()
    for y in range(height):
        for x in range(width):
            noise = (x * 37 + y * 91 + seed * 53) % 41 - 20
            red = x * 255 // (width - 1)
            green = y * 255 // (height - 1)
            blue = ((x // 4 + y // 6) % 2) * 200
            pixel = [min(255, max(0, value + noise)) for value in (red, green, blue)]
            if channels == 1:  # both gradients, so that flipped rows or columns would show
                pixel = [min(255, max(0, (pixel[0] + pixel[1]) // 2 + (pixel[2] - 100) // 4))]
            if channels in (2, 4):
                pixel.append(40 + (x + y) * 215 // (width + height - 2))
            data += bytes(pixel)
    return bytes(data)


FORMATS = {1: "Y' u8", 2: "Y'A u8", 3: "R'G'B' u8", 4: "R'G'B'A u8"}
TYPES = {1: Gimp.ImageType.GRAY_IMAGE, 2: Gimp.ImageType.GRAYA_IMAGE, 3: Gimp.ImageType.RGB_IMAGE,
         4: Gimp.ImageType.RGBA_IMAGE}


def new_layer(image, name, width, height, channels, parent=None, position=0, offsets=(0, 0), seed=0):
    layer = Gimp.Layer.new(image, name, width, height, TYPES[channels], 100.0, Gimp.LayerMode.NORMAL)
    image.insert_layer(layer, parent, position)
    layer.set_offsets(*offsets)
    buffer = layer.get_buffer()
    buffer.set(Gegl.Rectangle.new(0, 0, width, height), FORMATS[channels], structured(width, height, channels, seed))
    buffer.flush()
    return layer


def simple_image(width=32, height=24):
    image = Gimp.Image.new(width, height, Gimp.ImageBaseType.RGB)
    return image, new_layer(image, "source", width, height, 3)


# ---- running the plug-in and looking at the result ---------------------------------------------------


def dream(image, drawables, **arguments):
    """Run the procedure non-interactively; (status nick, error message or None, seconds)."""
    procedure = Gimp.get_pdb().lookup_procedure(PROCEDURE)
    config = procedure.create_config()
    config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    config.set_property("image", image)
    config.set_core_object_array("drawables", drawables)
    arguments.setdefault("endpoint", CONFIG["endpoint"])
    for name, value in arguments.items():
        config.set_property(name, value)
    started = time.monotonic()
    result = procedure.run(config)
    status = result.index(0)
    message = result.index(1) if status != Gimp.PDBStatusType.SUCCESS and result.length() > 1 else None
    return status.value_nick, message, round(time.monotonic() - started, 2)


def kind(item):
    """What sort of layer: "group_layer", "text_layer", "vector_layer", "link_layer" or "layer" (a raster one)."""
    for name in ("group_layer", "text_layer", "vector_layer", "link_layer"):
        check = getattr(item, "is_" + name, None)  # vector and link layers are new in GIMP 3.2
        if check is not None and check():
            return name
    return "layer"


def selected(image):
    """The image's selected drawables: the name of each and whether it is a layer mask."""
    return [{"name": item.get_name(), "mask": item.is_layer_mask()} for item in image.get_selected_drawables()]


def tree(item):
    info = {
        "name": item.get_name(),
        "group": item.is_group_layer(),
        "kind": kind(item),
        "type": item.type().value_nick,
        "offsets": list(item.get_offsets()[1:]),
        "size": [item.get_width(), item.get_height()],
        "mask": item.get_mask() is not None,
    }
    if info["group"]:
        info["children"] = [tree(child) for child in item.get_children()]
    return info


def dump(drawable, format_name, x=0, y=0, width=None, height=None):
    """Raw pixels (base64) of a drawable-local rectangle, the whole drawable by default."""
    rectangle = Gegl.Rectangle.new(x, y, width or drawable.get_width(), height or drawable.get_height())
    return base64.b64encode(drawable.get_buffer().get(rectangle, 1.0, format_name, Gegl.AbyssPolicy.NONE)).decode()


def group_of(image, parent=None):
    items = parent.get_children() if parent is not None else image.get_layers()
    return next((item for item in items if item.is_group_layer() and item.get_name().startswith("Dream: ")), None)


def saved_and_reloaded(image, name):
    path = os.path.join(OUT, name + ".xcf")
    if not Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, image, Gio.File.new_for_path(path), None):
        raise RuntimeError(f"could not save {path}")
    return Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(path))


def dreamt_layers(group, format_name):
    return {child.get_name(): dump(child, format_name) for child in group.get_children()}


# ---- scenarios ------------------------------------------------------------------------------------


def registration():
    procedure = Gimp.get_pdb().lookup_procedure(PROCEDURE)
    specs = {spec.name: spec for spec in procedure.get_arguments()}
    ints = {name: [specs[name].minimum, specs[name].maximum, specs[name].default_value]
            for name in ("iterations", "keep-every", "max-size", "octaves", "octave-scale", "seed")}
    return {
        "arguments": list(specs),
        "presets": Gimp.param_spec_choice_get_choice(specs["preset"]).list_nicks(),
        "preset_default": Gimp.param_spec_choice_get_default(specs["preset"]),
        "ints": ints,
        "endpoint_default": specs["endpoint"].get_default_value(),
        "menu_label": procedure.get_menu_label(),
        "menu_paths": procedure.get_menu_paths(),
        "image_types": procedure.get_image_types(),
    }


def rgb_keep_every():
    """A layer inside a group, between two others: the result goes right above it, in the same group.
    Two octaves: the first iterations are dreamt at 2/3 size and must still come back full size, aligned."""
    image = Gimp.Image.new(64, 48, Gimp.ImageBaseType.RGB)
    new_layer(image, "top", 64, 48, 3, seed=5)
    folder = Gimp.GroupLayer.new(image, "folder")
    image.insert_layer(folder, None, 1)
    new_layer(image, "lower", 64, 48, 3, parent=folder, position=0, seed=4)
    source = new_layer(image, "source", 64, 48, 3, parent=folder, position=0)
    new_layer(image, "upper", 64, 48, 3, parent=folder, position=0, seed=3)
    before = dump(source, "R'G'B'A u8")
    status, message, seconds = dream(image, [source], preset="tiny", iterations=5, seed=1, octaves=2,
                                     **{"keep-every": 2, "octave-scale": 1.5})
    result = {"status": status, "message": message, "seconds": seconds, "undo_enabled": image.undo_is_enabled(),
              "source_unchanged": dump(source, "R'G'B'A u8") == before, "selected": selected(image)}
    reloaded = saved_and_reloaded(image, "rgb")
    image.delete()
    folder = next(item for item in reloaded.get_layers() if item.get_name() == "folder")
    result["tree"] = [tree(item) for item in reloaded.get_layers()]
    result["source"] = dump(next(c for c in folder.get_children() if c.get_name() == "source"), "R'G'B'A u8")
    group = group_of(reloaded, folder)
    result["layers"] = dreamt_layers(group, "R'G'B'A u8") if group else {}
    reloaded.delete()
    return result


def alpha_selection():
    """A layer with alpha and its own offsets, an elliptic selection over part of it, a maximum size."""
    image = Gimp.Image.new(96, 80, Gimp.ImageBaseType.RGB)
    new_layer(image, "background", 96, 80, 3, seed=9)
    source = new_layer(image, "source", 60, 50, 4, offsets=(7, 5), seed=2)
    image.select_ellipse(Gimp.ChannelOps.REPLACE, 20, 15, 40, 30)
    selection = dump(image.get_selection(), "Y u8", 20, 15, 40, 30)
    status, message, seconds = dream(image, [source], preset="doggos", iterations=2, **{"max-size": 32}, seed=3)
    result = {"status": status, "message": message, "seconds": seconds, "selection": selection,
              "selected": selected(image)}
    reloaded = saved_and_reloaded(image, "alpha")
    image.delete()
    result["tree"] = [tree(item) for item in reloaded.get_layers()]
    result["source"] = dump(next(c for c in reloaded.get_layers() if c.get_name() == "source"), "R'G'B'A u8")
    group = group_of(reloaded)
    result["layers"] = dreamt_layers(group, "R'G'B'A u8") if group else {}
    result["masks"] = {c.get_name(): dump(c.get_mask(), "Y u8") for c in group.get_children() if c.get_mask()}
    reloaded.delete()
    return result


def grey():
    image = Gimp.Image.new(48, 40, Gimp.ImageBaseType.GRAY)
    source = new_layer(image, "source", 48, 40, 1)
    status, message, seconds = dream(image, [source], preset="acid", iterations=2, seed=2)
    result = {"status": status, "message": message, "seconds": seconds, "selected": selected(image)}
    reloaded = saved_and_reloaded(image, "grey")
    image.delete()
    result["base_type"] = reloaded.get_base_type().value_nick
    result["tree"] = [tree(item) for item in reloaded.get_layers()]
    result["source"] = dump(next(c for c in reloaded.get_layers() if c.get_name() == "source"), "Y'A u8")
    group = group_of(reloaded)
    result["layers"] = dreamt_layers(group, "Y'A u8") if group else {}
    reloaded.delete()
    return result


def dream_on(image, source, name):
    """Dream a layer of another kind than raster; what the run and the saved and reloaded image have."""
    before = {"kind": kind(source), "size": [source.get_width(), source.get_height()],
              "offsets": list(source.get_offsets()[1:])}
    status, message, seconds = dream(image, [source], preset="tiny", iterations=2, seed=8)
    result = {"status": status, "message": message, "seconds": seconds, "before": before, "selected": selected(image)}
    reloaded = saved_and_reloaded(image, name)
    image.delete()
    result["tree"] = [tree(item) for item in reloaded.get_layers()]
    source = next(item for item in reloaded.get_layers() if item.get_name() == "source")
    group = group_of(reloaded)
    pixels = dump(source, "R'G'B'A u8")
    result["differs"] = {child.get_name(): dump(child, "R'G'B'A u8") != pixels
                         for child in (group.get_children() if group else [])}
    reloaded.delete()
    return result


def text_layer():
    """A text layer (black text on transparency): it stays text; what the dream adds is raster layers."""
    image = Gimp.Image.new(96, 56, Gimp.ImageBaseType.RGB)
    new_layer(image, "background", 96, 56, 3, seed=7)
    source = Gimp.TextLayer.new(image, "Dream", Gimp.context_get_font(), 30.0, Gimp.Unit.pixel())
    source.set_name("source")
    image.insert_layer(source, None, 0)
    source.set_offsets(5, 8)
    return dream_on(image, source, "text")


def vector_layer():
    """GIMP 3.2's vector layer: an ellipse path, filled and stroked. GIMP 3.0 has none (recorded as such)."""
    if not hasattr(Gimp, "VectorLayer"):
        return {"unavailable": Gimp.version()}
    image = Gimp.Image.new(96, 56, Gimp.ImageBaseType.RGB)
    new_layer(image, "background", 96, 56, 3, seed=6)
    path = Gimp.Path.new(image, "shape")
    image.insert_path(path, None, 0)
    path.bezier_stroke_new_ellipse(48.0, 28.0, 36.0, 20.0, 0.0)
    source = Gimp.VectorLayer.new(image, path)
    source.set_name("source")
    image.insert_layer(source, None, 0)
    source.set_enable_fill(True)
    source.set_fill_color(Gegl.Color.new("orange"))
    source.set_enable_stroke(True)
    source.set_stroke_color(Gegl.Color.new("navy"))
    source.set_stroke_width(4.0)
    source.refresh()
    return dream_on(image, source, "vector")


# First on the plug-in's path, it makes `import zmq` fail as in GIMP for Windows' Python; and leaves a mark.
PYZMQ_BLOCKER = """open(__file__ + ".imported", "w").close()
raise ImportError("pyzmq hidden by the test, as GIMP for Windows' Python cannot load it")
"""


def without_pyzmq():
    """The plug-in's _vendor/ folder (first on its path; a vendored pyzmq is set aside) holds a zmq module that
    raises ImportError, so the dream can only go through wire/zmtp.py."""
    vendor = os.path.join(PLUGIN_DIR, "_vendor")
    aside = vendor + ".aside"
    if os.path.isdir(vendor):
        os.rename(vendor, aside)
    os.mkdir(vendor)
    try:
        with open(os.path.join(vendor, "zmq.py"), "w") as handle:
            handle.write(PYZMQ_BLOCKER)
        image, source = simple_image(48, 40)
        status, message, seconds = dream(image, [source], preset="tiny", iterations=2, seed=6)
        group = group_of(image)
        source_pixels = dump(source, "R'G'B'A u8")
        result = {"status": status, "message": message, "seconds": seconds,
                  "zmq_import_failed": os.path.exists(os.path.join(vendor, "zmq.py.imported")),
                  "layers": [child.get_name() for child in group.get_children()] if group else [],
                  "dreamt": bool(group) and all(dump(child, "R'G'B'A u8") != source_pixels
                                                for child in group.get_children())}
        image.delete()
    finally:
        shutil.rmtree(vendor)
        if os.path.isdir(aside):
            os.rename(aside, vendor)
    return result


def failure(make_drawables, **arguments):
    """A run that must fail: its status and message, and whether the image kept its layers as they were."""
    image, layer = simple_image()
    drawables = make_drawables(image, layer)
    before = [tree(item) for item in image.get_layers()]
    status, message, seconds = dream(image, drawables, **arguments)
    result = {"status": status, "message": message, "seconds": seconds,
              "unchanged": [tree(item) for item in image.get_layers()] == before}
    image.delete()
    return result


def two_layers(image, layer):
    return [layer, new_layer(image, "other", 32, 24, 3, seed=1)]


def a_group(image, layer):
    group = Gimp.GroupLayer.new(image, "a group")
    image.insert_layer(group, None, 0)
    new_layer(image, "inside", 32, 24, 3, parent=group)
    return [group]


def a_mask(image, layer):
    mask = layer.create_mask(Gimp.AddMaskType.WHITE)
    layer.add_mask(mask)
    return [mask]


def a_channel(image, layer):
    channel = Gimp.Channel.new(image, "a channel", 32, 24, 50.0, Gegl.Color.new("red"))
    image.insert_channel(channel, None, 0)
    return [channel]


def the_layer(image, layer):
    return [layer]


def with_launch_file(content, scenario):
    """Run a scenario with another backend.json (the plug-in reads it at run time), then put it back."""
    with open(LAUNCH_FILE) as handle:
        original = handle.read()
    with open(LAUNCH_FILE, "w") as handle:
        json.dump(content, handle)
    try:
        return scenario()
    finally:
        with open(LAUNCH_FILE, "w") as handle:
            handle.write(original)


def cannot_start():
    """Chroot: backend.json names the host's virtual environment, which does not exist in here."""
    scenario = lambda: failure(the_layer, preset="tiny", endpoint=CONFIG["vacant"])  # noqa: E731
    if CONFIG["native"]:  # no chroot: the recorded command would work, so name one that doesn't exist
        return with_launch_file({"command": ["/nonexistent/deep-dream/python", "-m", "backend", "serve"]}, scenario)
    return scenario()


def exits_early():
    crash = ["/usr/bin/python3", "-c", "import sys; sys.stderr.write('boom: no VGG16 here\\n'); sys.exit(3)"]
    return with_launch_file({"command": crash, "cwd": "/tmp"},
                            lambda: failure(the_layer, preset="tiny", endpoint=CONFIG["vacant"]))


def backend_dies():
    """The backend is killed (SIGKILL, its pid is visible from the chroot) while the dream runs."""
    image, source = simple_image(64, 48)
    killer = threading.Timer(CONFIG["kill_after"], os.kill, (CONFIG["doomed_pid"], signal.SIGKILL))
    killer.start()
    try:
        status, message, seconds = dream(image, [source], preset="tiny", iterations=200,
                                         endpoint=CONFIG["doomed_endpoint"], seed=4)
    finally:
        killer.cancel()
    group = group_of(image)
    result = {"status": status, "message": message, "seconds": seconds,
              "layers": [child.get_name() for child in group.get_children()] if group else []}
    image.delete()
    return result


SCENARIOS = {
    "registration": registration,
    "rgb_keep_every": rgb_keep_every,
    "alpha_selection": alpha_selection,
    "grey": grey,
    "text_layer": text_layer,
    "vector_layer": vector_layer,
    "without_pyzmq": without_pyzmq,
    "several_drawables": lambda: failure(two_layers, preset="tiny"),
    "group_drawable": lambda: failure(a_group, preset="tiny"),
    "mask_drawable": lambda: failure(a_mask, preset="tiny"),
    "channel_drawable": lambda: failure(a_channel, preset="tiny"),
    "unknown_preset": lambda: failure(the_layer, preset="ghost"),
    "octave_scale_under_one": lambda: failure(the_layer, preset="tiny", octaves=3, **{"octave-scale": 0.5}),
    "not_backend": lambda: failure(the_layer, preset="tiny", endpoint=CONFIG["foreign"]),
    "cannot_start": cannot_start,
    "exits_early": exits_early,
    "backend_dies": backend_dies,
}

report = {"gimp": Gimp.version(), "scenarios": {}}
for scenario_name, scenario in SCENARIOS.items():
    try:
        report["scenarios"][scenario_name] = scenario()
    except Exception:
        report["scenarios"][scenario_name] = {"exception": traceback.format_exc()}
    print(f"scenario {scenario_name}: done", flush=True)
with open(os.path.join(OUT, "report.json"), "w") as handle:
    json.dump(report, handle)
