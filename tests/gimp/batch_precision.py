"""Runs INSIDE GIMP 3 between the helpers of batch_scenarios.py and its runner, which runs these SCENARIOS
(conftest.with_scenario_helpers): the scenarios of test_gimp_precision.py.

Images of each precision (8-bit, 16-bit, 32-bit float; RGB and grey) with smooth gradients are dreamt with
python-fu-deep-dream non-interactively; the report holds the source's and the result layers' raw pixels (base64)
in the format the plug-in sends them in, so the pytest side can dream the same pixels itself and compare.
"""
# ruff: noqa: F821  (Gimp, Gegl, dream, group_of, … come from the helpers run before this file)

import struct
import sys

WIDTH, HEIGHT = 48, 40
DREAM = {"preset": "tiny", "iterations": 2, "seed": 11}  # the pytest side dreams the same


def gradient(channels, sample):
    """Smooth ramps in x and y, far finer than 8-bit levels, as `sample` packs a 0..1 value; alpha a ramp."""
    values = []
    for y in range(HEIGHT):
        for x in range(WIDTH):
            red, green = x / (WIDTH - 1), y / (HEIGHT - 1)
            pixel = [(red + green) / 2] if channels == 2 else [red, green, 0.2 + 0.6 * red * green]
            values += pixel + [0.3 + 0.7 * (x + y) / (WIDTH + HEIGHT - 2)]
    return sample(values)


def u8(values):
    return bytes(round(v * 255) for v in values)


def u16(values):
    return struct.pack(f"={len(values)}H", *(round(v * 65535) for v in values))


def f32(values):
    return struct.pack(f"={len(values)}f", *values)


def little_endian(drawable, format_name):
    """dump(drawable, format_name), as the wire has it: little-endian."""
    data = base64.b64decode(dump(drawable, format_name))
    if sys.byteorder == "big" and not format_name.endswith("u8"):  # the report, like the wire, is little-endian
        import array

        samples = array.array("f" if format_name.endswith("float") else "H", data)
        samples.byteswap()
        data = samples.tobytes()
    return base64.b64encode(data).decode()


def dream_image(base_type, precision, format_name, pixels):
    """A one-layer image of that precision, dreamt; its source and result layers in `format_name`."""
    image = Gimp.Image.new_with_precision(WIDTH, HEIGHT, base_type, precision)
    grey = base_type == Gimp.ImageBaseType.GRAY
    layer = Gimp.Layer.new(image, "source", WIDTH, HEIGHT,
                           Gimp.ImageType.GRAYA_IMAGE if grey else Gimp.ImageType.RGBA_IMAGE, 100.0,
                           Gimp.LayerMode.NORMAL)
    image.insert_layer(layer, None, 0)
    buffer = layer.get_buffer()
    buffer.set(Gegl.Rectangle.new(0, 0, WIDTH, HEIGHT), format_name, pixels)
    buffer.flush()
    status, message, seconds = dream(image, [layer], **DREAM)
    group = group_of(image)
    wire_format = "R'G'B'A " + format_name.split(" ")[1]  # as the plug-in reads it, from grey layers too
    report = {
        "status": status,
        "message": message,
        "seconds": seconds,
        "precision": image.get_precision().value_nick,
        "base_type": image.get_base_type().value_nick,
        "sent_as": little_endian(layer, wire_format),  # what the plug-in reads and sends
        "layers": [{"type": child.type().value_nick, "precision": little_endian(child, format_name),
                    "rgba": little_endian(child, wire_format)} for child in group.get_children()],  # newest first
    }
    image.delete()
    return report


SCENARIOS = {
    "u8": lambda: dream_image(Gimp.ImageBaseType.RGB, Gimp.Precision.U8_NON_LINEAR, "R'G'B'A u8",
                              gradient(3, u8)),
    "u16": lambda: dream_image(Gimp.ImageBaseType.RGB, Gimp.Precision.U16_NON_LINEAR, "R'G'B'A u16",
                               gradient(3, u16)),
    "float": lambda: dream_image(Gimp.ImageBaseType.RGB, Gimp.Precision.FLOAT_LINEAR, "R'G'B'A float",
                                 gradient(3, f32)),
    "float_perceptual": lambda: dream_image(Gimp.ImageBaseType.RGB, Gimp.Precision.FLOAT_NON_LINEAR,
                                            "R'G'B'A float", gradient(3, f32)),
    "grey_u16": lambda: dream_image(Gimp.ImageBaseType.GRAY, Gimp.Precision.U16_NON_LINEAR, "Y'A u16",
                                    gradient(2, u16)),
}
