"""The command in a message that @mentions the bot: pure text handling, no Zoom JSON.

``@Ops Bot deploy status api`` reads as ``deploy status api``. Zoom may mark where the mention
sits (``at_items`` spans); when it does, the spans at the start are cut. When it does not, a
leading ``@name`` is cut up to where a known command starts (a bot's display name may hold
spaces), or its first word when no command follows. Zoom may also send the text without the
mention at all (its own ``team_chat.app_mention`` sample does): that text is the command.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from chatopsbot.zoom.events import Span

__all__ = ["command_text"]

#: How many words a display name after ``@`` may take before a command is looked for.
MAX_NAME_WORDS = 4
#: What may follow a mention before the command: "@opsbot, deploy" or "@opsbot: deploy".
_SEPARATORS = " \t\n,:;"


def command_text(text: str, spans: Sequence[Span], starts_command: Callable[[str], bool]) -> str:
    """The command ``text`` carries once the leading mention(s) of the bot are cut.

    ``spans`` are Zoom's mention positions (end exclusive); ones that do not fit the text are
    ignored. ``starts_command(rest)`` says whether ``rest`` begins with a known command.
    """
    pos = _skip(text, 0)
    usable = sorted((s for s in spans if 0 <= s.start < s.end <= len(text)), key=lambda s: s.start)
    if usable:
        for span in usable:
            if span.start != pos:
                break
            pos = _skip(text, span.end)
        return text[pos:].strip()
    if not text[pos:].startswith("@"):
        return text.strip()
    # Where each word after the first starts, in the original text (quotes and spacing kept).
    starts = [m.start() for m in re.finditer(r"\S+", text)][1:]
    for start in starts[:MAX_NAME_WORDS]:
        rest = text[_skip(text, start) :].strip()
        if rest and starts_command(rest):
            return rest
    return text[_skip(text, starts[0]) :].strip() if starts else ""


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _SEPARATORS:
        pos += 1
    return pos
