"""Print pip constraints pinning every OpenTelemetry distribution pyproject.toml names (runtime and
extras) to its lower bound, one per line: CI installs statek's [test] extra with them to prove the
lowest versions statek allows really work (the other dependencies resolve as usual)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

REQUIREMENT = re.compile(r'"(opentelemetry-[A-Za-z0-9-]+)(?:\[[^\]]*\])?>=([^",;\s]+)')


def constraints(pyproject: str) -> list[str]:
    """``name==lower`` for each ``opentelemetry-*>=lower`` requirement, each name once."""
    pins: dict[str, str] = {}
    for name, lower in REQUIREMENT.findall(pyproject):
        pins.setdefault(name.lower(), lower)
    return [f"{name}=={lower}" for name, lower in sorted(pins.items())]


if __name__ == "__main__":
    print("\n".join(constraints(Path(sys.argv[1]).read_text(encoding="utf-8"))))
