"""Deep Dream backend: a warm VGG16 that dreams images, served over ZeroMQ, plus a command line."""

__version__ = "0.1.0"
