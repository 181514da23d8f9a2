"""The transport: serves the engine over ZeroMQ (wire format in wire/protocol.py). No TensorFlow here."""
