"""The vocabulary of the procedural worlds' captions (:attr:`World.caption`): what the shipped
text-to-image model was trained to read."""

from __future__ import annotations

from lyra3d.data.worlds.scene import PALETTE, SKIES
from lyra3d.models.text_to_image import PAD, UNK

#: Words of the world generator's captions besides colours, sky names and shapes (see ``World.caption``).
_GLUE_WORDS = (",", "a", "an", "and", "on", "floor", "surrounded", "by", "walls", "sky", "moving",
               "checkered", "striped", "mottled", "fading", "to", "empty", "world")
_SHAPES = ("sphere", "box", "cylinder", "spheres", "boxes", "cylinders")
_COUNTS = ("two", "three", "four", "five", "six", "seven", "eight")


def caption_vocabulary() -> list[str]:
    """The word vocabulary of the procedural worlds' captions: ``<pad>``, ``<unk>``, then every word the
    caption builder uses (colours and skies of :mod:`~lyra3d.data.worlds.scene`, shapes, counts, glue words)."""
    words = [PAD, UNK, *_GLUE_WORDS, *_SHAPES, *_COUNTS, *PALETTE, *SKIES]
    return list(dict.fromkeys(words))  # unique, order kept
