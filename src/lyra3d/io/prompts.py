"""Text prompts: one check for every command that takes one."""

from __future__ import annotations

from lyra3d.errors import InputError


# -- prompt ----------------------------------------------------------------------------------------------
def validate_prompt(text: str | None) -> str:
    """The prompt with surrounding whitespace removed and inner runs of whitespace (newlines, tabs)
    collapsed to one space; an empty or missing prompt raises :class:`InputError`."""
    if text is not None and not isinstance(text, str):
        raise InputError(f"the prompt must be text, got {type(text).__name__}")
    clean = " ".join((text or "").split())
    try:
        clean.encode("utf-8")
    except UnicodeEncodeError as e:  # lone surrogates: bytes the shell passed that are not UTF-8
        raise InputError(f"the prompt holds bytes that are not UTF-8 text (at character {e.start}); pass the "
                         "prompt in UTF-8") from None
    if not clean:
        raise InputError("the prompt is empty; describe the scene in a few words, "
                         "e.g. --prompt \"a red sphere on a checkered floor\"")
    return clean
