"""Runs INSIDE GIMP 3's GUI (python-fu-eval, fed on stdin): the settings dialog that test_gimp_dialog.py drives.

It opens a small image in a display and runs python-fu-deep-dream INTERACTIVE, as the menu does: the
plug-in's settings dialog opens, and the PDB call blocks while the test looks at it and types into it from
the host (xdotool). When the dialog has been accepted and the dream has run, this script writes a JSON
report: the status and the result layers' names. Settings in the JSON file named by $DD_TEST_CONFIG.
"""

import json
import os
import traceback

import gi

gi.require_version("Gimp", "3.0")
from gi.repository import Gimp, Gio  # noqa: E402

CONFIG = json.loads(open(os.environ["DD_TEST_CONFIG"]).read())
REPORT = os.path.join(CONFIG["out"], "report.json")

try:
    image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(CONFIG["image"]))
    image.scale(CONFIG["width"], round(image.get_height() * CONFIG["width"] / image.get_width()))
    Gimp.Display.new(image)
    Gimp.displays_flush()
    procedure = Gimp.get_pdb().lookup_procedure("python-fu-deep-dream")
    config = procedure.create_config()
    config.set_property("run-mode", Gimp.RunMode.INTERACTIVE)
    config.set_property("image", image)
    config.set_core_object_array("drawables", image.get_selected_drawables())
    result = procedure.run(config)
    status = result.index(0)
    group = next((item for item in image.get_layers() if item.is_group_layer()), None)
    report = {"status": status.value_nick,
              "message": result.index(1) if status != Gimp.PDBStatusType.SUCCESS and result.length() > 1 else None,
              "layers": [child.get_name() for child in group.get_children()] if group else []}
except Exception:
    report = {"exception": traceback.format_exc()}
with open(REPORT + ".part", "w") as handle:
    json.dump(report, handle)
os.replace(REPORT + ".part", REPORT)
