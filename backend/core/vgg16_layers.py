"""VGG16's convolution layers as Keras names them (what presets may use) and the shape of the network
that tiling reasons about. No TensorFlow here, so reading and checking presets does not load it.

Block b (1–5) runs CONVS_PER_BLOCK[b − 1] 3×3 'same' convolutions with BLOCK_FILTERS[b − 1] filters,
then a 2×2 max-pool of stride 2 ('valid', so an odd side loses its last row or column).
"""

CONVS_PER_BLOCK = (2, 2, 3, 3, 3)
BLOCK_FILTERS = (64, 128, 256, 512, 512)
VGG16_CONV_LAYERS = tuple(
    f"block{block}_conv{conv}" for block, convs in enumerate(CONVS_PER_BLOCK, 1) for conv in range(1, convs + 1)
)


def position(layer: str) -> tuple[int, int]:
    """(block, conv), both from 1: "block3_conv2" → (3, 2)."""
    if layer not in VGG16_CONV_LAYERS:
        raise ValueError(f"unknown VGG16 layer {layer!r}")
    block, conv = layer.removeprefix("block").split("_conv")
    return int(block), int(conv)
