"""Runs INSIDE GIMP 3's GUI (python-fu-eval, fed on stdin): the dream that test_gimp_interactive.py stops.

It opens an image in a display, selects a rectangle in it (so that the result layers get masks) and runs
python-fu-deep-dream the way Filters ▸ Repeat does (WITH_LAST_VALS:
the settings come from the profile's last values, no settings dialog, but the plug-in's own progress window
with its Stop button). The PDB call blocks until the dream ends; meanwhile the pytest side watches the
image window's title (the active layer's name, i.e. the newest dreamt layer) and presses Stop. Then this
script records what the run left (status, layers), saves the image to XCF, reloads it and writes a JSON
report. Then, for the test's key presses in the image window (Ctrl+Z, then Ctrl+Y), it waits for the
test's signal file <stage>.pressed and records the layers again in <stage>.json: the key events are handled
by GIMP's core while this plug-in process waits. Last ("repeat"), once the test has written short last
values, it runs the dream again as Filters ▸ Repeat would: with the last values, on the image's selected
drawables. Settings come from the JSON file named by $DD_TEST_CONFIG
(paths inside the chroot).
"""

import json
import os
import time
import traceback

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio  # noqa: E402

PROCEDURE = "python-fu-deep-dream"
CONFIG = json.loads(open(os.environ["DD_TEST_CONFIG"]).read())
# With --console-messages GIMP prints its messages on stderr; the test checks this one arrives, so that it
# knows a "left image undo in inconsistent state" message would have been seen too.
MARKER = "deep-dream-test: GIMP messages reach the console"
STAGES = ("undo", "redo", "repeat")  # what the test does after the report, in this order
SIGNAL_TIMEOUT_S = 30


def pixels(drawable, x=0, y=0, width=None, height=None):
    """A drawable-local rectangle's pixels, the whole drawable by default."""
    rectangle = Gegl.Rectangle.new(x, y, width or drawable.get_width(), height or drawable.get_height())
    return drawable.get_buffer().get(rectangle, 1.0, "R'G'B'A u8", Gegl.AbyssPolicy.NONE)


def layers_of(image):
    """The top-level layers' names, the dream group's children (name, size, offsets, differs from the source)."""
    top = image.get_layers()
    source = next((item for item in top if item.get_name() == "source"), None)
    group = next((item for item in top if item.is_group_layer()), None)
    children = []
    for child in group.get_children() if group else []:
        size, offsets = [child.get_width(), child.get_height()], list(child.get_offsets()[1:])
        children.append({"name": child.get_name(), "size": size, "offsets": offsets,
                         "mask": child.get_mask() is not None,  # the source lies at (0, 0): same coordinates
                         "differs": source is not None and pixels(child) != pixels(source, *offsets, *size)})
    return {"top": [item.get_name() for item in top], "group": group.get_name() if group else None,
            "children": children}


def selected(image):
    return [{"name": item.get_name(), "mask": item.is_layer_mask()} for item in image.get_selected_drawables()]


def dream_as_repeat_does(image):
    """Run the procedure as Filters ▸ Repeat does: the last values, on the image's selected drawables."""
    procedure = Gimp.get_pdb().lookup_procedure(PROCEDURE)
    config = procedure.create_config()
    config.set_property("run-mode", Gimp.RunMode.WITH_LAST_VALS)
    config.set_property("image", image)
    config.set_core_object_array("drawables", image.get_selected_drawables())
    started = time.monotonic()
    result = procedure.run(config)
    status = result.index(0)
    return {
        "status": status.value_nick,
        "status_value": int(status),
        "message": result.index(1) if status != Gimp.PDBStatusType.SUCCESS and result.length() > 1 else None,
        "seconds": round(time.monotonic() - started, 2),
    }


def stopped_dream():
    image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(CONFIG["image"]))
    image.scale(CONFIG["width"], round(image.get_height() * CONFIG["width"] / image.get_width()))
    image.get_layers()[0].set_name("source")
    inset = CONFIG["inset"]
    selection = [inset, inset, image.get_width() - 2 * inset, image.get_height() - 2 * inset]
    image.select_rectangle(Gimp.ChannelOps.REPLACE, *selection)
    image.undo_disable()  # a fresh undo history: the dream's step is the only one
    image.undo_enable()
    Gimp.Display.new(image)
    Gimp.displays_flush()
    report = {**dream_as_repeat_does(image), "undo_enabled": image.undo_is_enabled(), "layers": layers_of(image),
              "selection": selection, "selected": selected(image)}
    path = os.path.join(CONFIG["out"], "stopped.xcf")
    if not Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, image, Gio.File.new_for_path(path), None):
        raise RuntimeError(f"could not save {path}")
    image.clean_all()  # saved: nothing for --quit to ask about
    reloaded = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(path))
    report["reloaded"] = layers_of(reloaded)
    reloaded.delete()
    return report, image


def write_report(name, content):
    """Written whole or not at all: the test reads it as soon as it exists."""
    path = os.path.join(CONFIG["out"], name)
    with open(path + ".part", "w") as handle:
        json.dump(content, handle)
    os.replace(path + ".part", path)


def signalled(name):
    """Whether the test's signal file appears within SIGNAL_TIMEOUT_S (polled every 0.1 s)."""
    deadline = time.monotonic() + SIGNAL_TIMEOUT_S
    while not os.path.exists(os.path.join(CONFIG["out"], name)):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def after_keys(image):
    """The layers after each key the test presses in the image window (GIMP handles the key meanwhile), and
    what a repeated run does."""
    for stage in STAGES:
        if not signalled(f"{stage}.pressed"):
            break  # the test gave up; it reports why
        try:
            if not image:
                write_report(f"{stage}.json", {"error": "no image"})
            elif stage == "repeat":
                drawables = selected(image)
                write_report(f"{stage}.json", {**dream_as_repeat_does(image), "drawables": drawables,
                                               "layers": layers_of(image)})
            else:
                write_report(f"{stage}.json", {"layers": layers_of(image)})
        except Exception:
            write_report(f"{stage}.json", {"exception": traceback.format_exc()})
    if image:
        image.clean_all()  # back where it was saved, or not: nothing for --quit to ask about


report = {"gimp": Gimp.version()}
image = None
try:
    result, image = stopped_dream()
    report.update(result)
except Exception:
    report["exception"] = traceback.format_exc()
Gimp.message(MARKER)
write_report("report.json", report)
after_keys(image)
