"""Runs INSIDE GIMP 3 between the helpers of batch_scenarios.py and its runner, which runs these SCENARIOS
(conftest.with_scenario_helpers): every scenario of test_gimp_recipe.py. Dreams with
python-fu-deep-dream, saves and reloads the XCF, reads each result layer's `deep-dream` parasite, runs
python-fu-deep-dream-again on result layers, and reports what it finds (statuses, messages, recipes, tattoos,
raw pixels in base64); the pytest side judges it.
"""
# ruff: noqa: F821  (Gimp, json, dream, dump, … come from the helpers run before this file)

AGAIN = "python-fu-deep-dream-again"
RECIPE = "deep-dream"


def again(image, drawables):
    """Deep Dream Again, non-interactively: (status nick, error message or None)."""
    procedure = Gimp.get_pdb().lookup_procedure(AGAIN)
    config = procedure.create_config()
    config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    config.set_property("image", image)
    config.set_core_object_array("drawables", drawables)
    config.set_property("endpoint", CONFIG["endpoint"])
    result = procedure.run(config)
    status = result.index(0)
    return status.value_nick, (result.index(1) if status != Gimp.PDBStatusType.SUCCESS else None)


def results(image):
    """Every Deep Dream group, top first: its layers' names, recipes (text), parasite flags and pixels."""
    groups = []
    for group in image.get_layers():
        if not (group.is_group_layer() and group.get_name().startswith("Dream: ")):
            continue
        layers = []
        for layer in group.get_children():
            parasite = layer.get_parasite(RECIPE)
            layers.append({"name": layer.get_name(), "pixels": dump(layer, "R'G'B'A u8"),
                           "size": [layer.get_width(), layer.get_height()],
                           "recipe": bytes(parasite.get_data()).decode() if parasite else None,
                           "persistent": bool(parasite and parasite.is_persistent())})
        groups.append({"name": group.get_name(), "layers": layers})
    return groups


def layer_named(image, name):
    return next(layer for layer in image.get_layers() if layer.get_name() == name)


def registration():
    procedure = Gimp.get_pdb().lookup_procedure(AGAIN)
    return {"arguments": [spec.name for spec in procedure.get_arguments()], "menu_label": procedure.get_menu_label(),
            "menu_paths": procedure.get_menu_paths(), "image_types": procedure.get_image_types()}


def random_seed_then_again():
    """Four iterations in two octaves with a random seed; saved, reloaded; then iteration 2 (the small octave's
    last) dreamt again from its recipe, in the reloaded image."""
    image, source = simple_image(64, 48)
    status, message, _ = dream(image, [source], preset="tiny", iterations=4, seed=0, octaves=2,
                               **{"octave-scale": 1.5})
    result = {"status": status, "message": message, "source_tattoo": source.get_tattoo(),
              "source": dump(source, "R'G'B' u8")}
    reloaded = saved_and_reloaded(image, "recipe")
    image.delete()
    result["reloaded_tattoo"] = layer_named(reloaded, "source").get_tattoo()
    result["before"] = results(reloaded)
    group = next(layer for layer in reloaded.get_layers() if layer.is_group_layer())
    second = next(layer for layer in group.get_children()
                  if json.loads(bytes(layer.get_parasite(RECIPE).get_data()))["iteration"] == 2)
    result["again_status"], result["again_message"] = again(reloaded, [second])
    result["after"] = results(reloaded)
    result["order"] = [layer.get_name() for layer in reloaded.get_layers()]
    reloaded.delete()
    return result


def selection_on_an_offset_layer_again():
    """A layer with alpha and offsets under another, part of it selected, a maximum size: the recipe records
    the part dreamt, and the source is found by its tattoo though a layer of the same name comes first."""
    image = Gimp.Image.new(96, 80, Gimp.ImageBaseType.RGB)
    new_layer(image, "background", 96, 80, 3, seed=9)
    source = new_layer(image, "source", 60, 50, 4, offsets=(7, 5), seed=2)
    image.select_rectangle(Gimp.ChannelOps.REPLACE, 20, 15, 40, 30)
    status, message, _ = dream(image, [source], preset="tiny", iterations=2, seed=5, **{"max-size": 32})
    new_layer(image, "source", 96, 80, 3, seed=3)  # a namesake on top: the tattoo tells them apart
    Gimp.Selection.none(image)
    group = next(layer for layer in image.get_layers() if layer.is_group_layer())
    first = group.get_children()[-1]  # iteration 1: the oldest, at the bottom
    result = {"status": status, "message": message, "source_tattoo": source.get_tattoo(),
              "source": dump(source, "R'G'B'A u8", 13, 10, 40, 30)}
    result["again_status"], result["again_message"] = again(image, [first])
    result["after"] = results(image)
    image.delete()
    return result


def changed_source_again():
    """The source painted over after the dream: Deep Dream Again dreams it anyway, and says why it differs."""
    image, source = simple_image(48, 40)
    dream(image, [source], preset="tiny", iterations=1, seed=2)
    group = next(layer for layer in image.get_layers() if layer.is_group_layer())
    buffer = source.get_buffer()
    buffer.set(Gegl.Rectangle.new(0, 0, 16, 16), "R'G'B' u8", bytes(16 * 16 * 3))
    buffer.flush()
    status, message = again(image, [group.get_children()[0]])
    result = {"status": status, "message": message, "after": results(image)}
    image.delete()
    return result


def broken(prepare):
    """Deep Dream Again on a layer `prepare(image, source, result layer)` gives: it must fail, changing nothing."""
    image, source = simple_image(48, 40)
    dream(image, [source], preset="tiny", iterations=1, seed=2)
    group = next(layer for layer in image.get_layers() if layer.is_group_layer())
    target = prepare(image, source, group.get_children()[0])
    before = [tree(item) for item in image.get_layers()]
    status, message = again(image, [target])
    result = {"status": status, "message": message, "unchanged": [tree(item) for item in image.get_layers()] == before}
    image.delete()
    return result


def garbled(image, source, layer):
    layer.attach_parasite(Gimp.Parasite.new(RECIPE, Gimp.PARASITE_PERSISTENT, b"{half a recipe"))
    return layer


def source_deleted(image, source, layer):
    image.remove_layer(source)
    return layer


SCENARIOS = {
    "registration": registration,
    "random_seed_then_again": random_seed_then_again,
    "selection_on_an_offset_layer_again": selection_on_an_offset_layer_again,
    "changed_source_again": changed_source_again,
    "no_recipe": lambda: broken(lambda image, source, layer: source),
    "garbled_recipe": lambda: broken(garbled),
    "source_deleted": lambda: broken(source_deleted),
}

