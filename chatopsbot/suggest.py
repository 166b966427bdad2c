"""The close matches a message about a typo suggests ("did you mean ...?")."""

from __future__ import annotations

from collections.abc import Sequence


def close_matches(
    word: str, possibilities: Sequence[str], n: int = 1, cutoff: float = 0.6
) -> list[str]:
    """:func:`difflib.get_close_matches`, with difflib imported at the first typo.

    Only a mistake needs it, and a bot that makes none keeps ~150 KiB less resident (issue #18).
    """
    import difflib

    return difflib.get_close_matches(word, possibilities, n=n, cutoff=cutoff)
