"""Reading config.example.toml's commented plugin sections, to check them against the code."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any


def example_tables(plugin: str) -> dict[str, Any]:
    """config.example.toml's commented ``[plugins.<plugin>...]`` keys, uncommented and read."""
    lines = (Path(__file__).parents[2] / "config.example.toml").read_text().splitlines()
    keep, inside = [], False
    for line in lines:
        if line.startswith("# [") or line.startswith("["):
            inside = line.startswith(f"# [plugins.{plugin}")
        if inside and re.match(r"^# (\[|[a-z_]+ = )", line):
            keep.append(line[2:])
    table: dict[str, Any] = tomllib.loads("\n".join(keep))["plugins"][plugin]
    return table
