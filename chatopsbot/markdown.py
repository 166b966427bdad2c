"""What Zoom's message text can hold: user text made literal in markdown, and length limits.

Zoom's markdown (``is_markdown_support``) reads ``*bold*``, ``**bold**``, ``_italic_``,
``~strike~``, `` `code` ``, links as ``<https://example.com|label>`` and @-mentions. Zoom documents
no escape character, so :func:`escape_markdown` swaps each markup character for a look-alike
that no parser reads as markup: the text reads the same, and cannot format, link or mention.

Zoom documents no length limit for chatbot messages either. Its own quickstart caps text at
4,096 characters (``utils/validation.js``), as do Zoom's published card references; that is the
limit kept here: longer text is split into several messages, or cut with a marker inside cards.
"""

from __future__ import annotations

__all__ = ["MAX_TEXT", "TRUNCATED", "escape_markdown", "split_text", "truncate"]

#: Characters of text per message item, after Zoom's quickstart (see the module docstring).
MAX_TEXT = 4096
#: What ends a text cut to fit.
TRUNCATED = "… (truncated)"
#: What starts each further part of a text split over several messages.
CONTINUED = "(continued) "

_LOOK_ALIKES = str.maketrans(
    {
        "*": "\u2217",  # asterisk operator
        "_": "\u02cd",  # modifier letter low macron
        "~": "\u223c",  # tilde operator
        "`": "\u02cb",  # modifier letter grave accent
        "<": "\u2039",  # single left-pointing angle quotation mark
        ">": "\u203a",  # single right-pointing angle quotation mark
        "[": "\uff3b",  # fullwidth left square bracket
        "]": "\uff3d",  # fullwidth right square bracket
        "@": "\uff20",  # fullwidth commercial at
        "#": "\uff03",  # fullwidth number sign
    }
)


def escape_markdown(text: str) -> str:
    """``text`` as it reads, with nothing in it Zoom's markdown would act on.

    Use it for anything a user typed (a poll option, a deploy description) that goes into a
    card or text with ``markdown=True``.
    """
    return text.translate(_LOOK_ALIKES)


def truncate(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` if it fits in ``limit`` characters; else its start and :data:`TRUNCATED`."""
    if len(text) <= limit:
        return text
    return text[: limit - len(TRUNCATED)].rstrip() + TRUNCATED


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """``text`` in parts of at most ``limit`` characters, cut at line ends (else at spaces)
    where possible; every part after the first starts with :data:`CONTINUED`."""
    if limit <= len(CONTINUED):
        raise ValueError(f"a limit of {limit} leaves no room beside the continuation marker")
    parts: list[str] = []
    rest = text
    while True:
        room = limit - (len(CONTINUED) if parts else 0)
        if len(rest) <= room:
            parts.append(rest)
            break
        cut = rest.rfind("\n", 0, room + 1)
        if cut <= room // 2:
            cut = rest.rfind(" ", 0, room + 1)
        if cut <= room // 2:
            cut = room
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    return [part if i == 0 else CONTINUED + part for i, part in enumerate(parts)]
