"""What the plug-in's procedures (Deep Dream, Deep Dream Again, Deep Dream Animation) have in common when they
are registered: one layer of an RGB or grey image, a place in Filters ▸ Artistic, the preset list."""

from __future__ import annotations

from collections.abc import Callable

import choices
from gi.repository import Gimp, GObject

READWRITE = GObject.ParamFlags.READWRITE


def filter_procedure(plugin: Gimp.PlugIn, name: str, run: Callable[..., Gimp.ValueArray], data: object,
                     label: str, blurb: str, help_text: str) -> Gimp.Procedure:
    """An image procedure on exactly one layer, in Filters ▸ Artistic as `label` (with its mnemonic)."""
    procedure = Gimp.ImageProcedure.new(plugin, name, Gimp.PDBProcType.PLUGIN, run, data)
    procedure.set_image_types("RGB*, GRAY*")
    procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
    procedure.set_menu_label(label)
    procedure.add_menu_path("<Image>/Filters/Artistic")
    procedure.set_documentation(blurb, help_text, name)
    procedure.set_attribution("Deep Dream for GIMP", "Deep Dream for GIMP contributors", "2025")
    return procedure


_found: dict[str, dict[str, choices.PresetInfo]] = {}  # per endpoint: GIMP registers every procedure in one process


def add_preset_argument(procedure: Gimp.Procedure, endpoint: str) -> None:
    """The `preset` choice: every preset found now (choices.presets, asked once per endpoint for all the
    procedures), each with what it does as its help."""
    if endpoint not in _found:
        _found[endpoint] = choices.presets(endpoint)
    preset_choice = Gimp.Choice.new()
    for index, (preset, info) in enumerate(_found[endpoint].items()):
        preset_choice.add(preset, index, preset, info.description)
    procedure.add_choice_argument("preset", "_Preset", "The kind of dream: the built-ins and the user's own",
                                  preset_choice, choices.DEFAULT_PRESET, READWRITE)
