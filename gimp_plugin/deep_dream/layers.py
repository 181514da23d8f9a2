"""What a dream leaves in the image: which iterations become layers, and their names. Standard library only."""

from __future__ import annotations


def is_kept(number: int, iterations: int, keep_every: int) -> bool:
    """Whether iteration `number` (1-based) becomes a layer: every keep_every-th, and always the last."""
    if keep_every < 1:
        raise ValueError(f"keep_every must be at least 1, got {keep_every}")
    return number % keep_every == 0 or number == iterations


# Short, so that a Layers dock of the default width shows them whole (it cut "Deep Dream · do…"): the group
# says what made its layers, each layer which preset and iteration it is.
def group_name(preset: str) -> str:
    return f"Dream: {preset}"


def layer_name(preset: str, number: int) -> str:
    return f"{preset} {number}"
