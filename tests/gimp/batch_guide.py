"""Runs INSIDE GIMP 3 between the helpers of batch_scenarios.py and its runner, which runs these SCENARIOS
(conftest.with_scenario_helpers): guided dreams, the guide a layer of a second open image.

Reports statuses, messages, the "guide" argument's spec and the dreamt pixels.
"""
# ruff: noqa: F821  (Gimp, dream, new_layer, … are batch_scenarios.py's, defined before this runs)


def last_dreamt(image):
    group = group_of(image)
    return dump(group.get_children()[0], "R'G'B' u8") if group else None


def guided():
    """The same dream (seed, preset) unguided, guided by a layer of another image, and guided by a layer
    with alpha; then a guide too thin to use, which must fail with the backend's message."""
    spec = next(s for s in Gimp.get_pdb().lookup_procedure(PROCEDURE).get_arguments() if s.name == "guide")
    other = Gimp.Image.new(90, 60, Gimp.ImageBaseType.RGB)
    plain_guide = new_layer(other, "stripes", 90, 60, 3, seed=11)
    alpha_guide = new_layer(other, "with alpha", 50, 70, 4, seed=12)
    thin_guide = new_layer(other, "thin", 300, 2, 3, seed=13)
    result = {"spec": {"type": spec.value_type.name, "none_ok": Gimp.param_spec_item_none_allowed(spec)}}
    for name, guide in (("unguided", None), ("guided", plain_guide), ("alpha", alpha_guide), ("thin", thin_guide)):
        image, source = simple_image(64, 48)
        status, message, seconds = dream(image, [source], preset="tiny", iterations=2, seed=4, guide=guide)
        result[name] = {"status": status, "message": message, "seconds": seconds, "pixels": last_dreamt(image)}
        image.delete()
    other.delete()
    return result


SCENARIOS = {"guided": guided}
