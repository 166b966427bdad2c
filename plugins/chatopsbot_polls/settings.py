"""``[plugins.polls]``: the time zone deadlines are read in, and who may close a poll."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal
from zoneinfo import ZoneInfo

from attrs import field, frozen

from chatopsbot import load_config

ClosePolicy = Literal["creator_or_admin", "anyone"]


@frozen
class PollSettings:
    """``timezone`` (IANA) for ``--closes-at`` and shown deadlines; ``close`` says who may
    close a poll someone else asked (``creator_or_admin``, the default, or ``anyone``)."""

    timezone: ZoneInfo = field(factory=lambda: ZoneInfo("UTC"))
    close: ClosePolicy = "creator_or_admin"


def parse_settings(config: Mapping[str, Any]) -> PollSettings:
    """``[plugins.polls]`` read by the framework; a wrong value names its key."""
    return load_config(PollSettings, config)
