"""VGG16's convolution layer names, as Keras names them: what presets may use. No TensorFlow here, so
reading and checking presets does not load it."""

VGG16_CONV_LAYERS = (
    "block1_conv1", "block1_conv2",
    "block2_conv1", "block2_conv2",
    "block3_conv1", "block3_conv2", "block3_conv3",
    "block4_conv1", "block4_conv2", "block4_conv3",
    "block5_conv1", "block5_conv2", "block5_conv3",
)  # fmt: skip
