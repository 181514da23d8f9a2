"""Runs INSIDE GIMP 3 between the helpers of batch_scenarios.py and its runner, which runs these SCENARIOS
(conftest.with_scenario_helpers): the scenarios of test_gimp_animation.py.

Calls python-fu-deep-dream-animation non-interactively, then exports the image of frames it made with GIMP's
own GIF and WebP exporters ("as animation"), and reports what it finds.
"""
# ruff: noqa: F821  (Gimp, Gegl, new_layer, … come from the helpers run before this file)

ANIMATION = "python-fu-deep-dream-animation"
WIDTH, HEIGHT = 48, 40


def animate(image, drawables, **arguments):
    """Run the procedure non-interactively; (status nick, error message or the image returned)."""
    procedure = Gimp.get_pdb().lookup_procedure(ANIMATION)
    config = procedure.create_config()
    config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    config.set_property("image", image)
    config.set_core_object_array("drawables", drawables)
    config.set_property("endpoint", CONFIG["endpoint"])
    for name, value in arguments.items():
        config.set_property(name, value)
    result = procedure.run(config)
    status = result.index(0)
    return status.value_nick, result.index(1) if result.length() > 1 else None


def export(image, name, procedure_name, **arguments):
    """Export through GIMP's own exporter, with its own argument names; the file's path (inside the root)."""
    path = os.path.join(OUT, name)
    procedure = Gimp.get_pdb().lookup_procedure(procedure_name)
    config = procedure.create_config()
    config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    config.set_property("image", image)
    config.set_property("file", Gio.File.new_for_path(path))
    for key, value in arguments.items():
        config.set_property(key, value)
    status = procedure.run(config).index(0)
    if status != Gimp.PDBStatusType.SUCCESS:
        raise RuntimeError(f"{procedure_name} → {path}: {status.value_nick}")
    return name


def frames():
    image = Gimp.Image.new(WIDTH, HEIGHT, Gimp.ImageBaseType.RGB)
    source = new_layer(image, "source", WIDTH, HEIGHT, 3)
    before = {item.get_id() for item in Gimp.get_images()}
    status, returned = animate(image, [source], preset="tiny", frames=CONFIG["frames"], iterations=1, zoom=1.15,
                              rotate=6.0, **{"pan-x": 1.0, "pan-y": -1.0, "frame-ms": CONFIG["frame_ms"], "seed": 5})
    made = [item for item in Gimp.get_images() if item.get_id() not in before]
    result = {"status": status, "returned": returned.get_id() if isinstance(returned, Gimp.Image) else returned,
              "made": [item.get_id() for item in made], "new_images": len(made),
              "source_layers": [layer.get_name() for layer in image.get_layers()]}
    if made:
        animation = made[0]
        layers = animation.get_layers()  # top first
        result["size"] = [animation.get_width(), animation.get_height()]
        result["layers"] = [{"name": layer.get_name(), "size": [layer.get_width(), layer.get_height()],
                             "offsets": list(layer.get_offsets()[1:]), "group": layer.is_group_layer()}
                            for layer in layers]
        result["pixels"] = [base64.b64encode(layer.get_buffer().get(
            Gegl.Rectangle.new(0, 0, WIDTH, HEIGHT), 1.0, "R'G'B' u8", Gegl.AbyssPolicy.NONE)).decode()
            for layer in layers]
        # default delays unlike the layers' own: the exported timing must come from the layer names
        result["gif"] = export(animation, "frames.gif", "file-gif-export", **{"as-animation": True,
                               "default-delay": 500, "loop": True})
        result["webp"] = export(animation, "frames.webp", "file-webp-export", animation=True, lossless=True,
                                **{"default-delay": 500})
        animation.delete()
    image.delete()
    return result


def registration():
    procedure = Gimp.get_pdb().lookup_procedure(ANIMATION)
    return {"label": procedure.get_menu_label(), "paths": list(procedure.get_menu_paths()),
            "arguments": [spec.name for spec in procedure.get_arguments()],
            "returns": [spec.name for spec in procedure.get_return_values()]}


def two_layers():
    image = Gimp.Image.new(WIDTH, HEIGHT, Gimp.ImageBaseType.RGB)
    layers = [new_layer(image, name, WIDTH, HEIGHT, 3) for name in ("a", "b")]
    before = len(Gimp.get_images())
    status, message = animate(image, layers, preset="tiny", frames=2, iterations=1)
    result = {"status": status, "message": message, "new_images": len(Gimp.get_images()) - before}
    image.delete()
    return result


SCENARIOS = {"registration": registration, "frames": frames, "two_layers": two_layers}
