"""Every code example in README.md and docs/*.md runs as written, against the provider simulator.

Each ```python block is run on its own (a fresh namespace, as if pasted into a file) with every
built-in provider's settings pointing at a :class:`~statek.testing.ProviderSimulator` (the
``statek_simulator`` fixture users enable too). A block that is deliberately partial says so with
an HTML comment on the line before it, ``<!-- fragment: why -->``, and is still compiled (top-level
``await`` allowed). ```yaml blocks must parse. A block that binds statek's default port 9469 is
skipped when another process holds that port.
"""

from __future__ import annotations

import ast
import re
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import statek
from statek.providers import registry
from statek.testing.pytest_plugin import statek_simulator  # noqa: F401 - the fixture, as users enable it

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
_FRAGMENT = re.compile(r"<!--\s*fragment\b[^>]*-->\s*$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    language: str
    code: str
    fragment: bool

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks() -> list[Block]:
    found = []
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        for match in _FENCE.finditer(text):
            before = [line for line in text[: match.start()].splitlines() if line.strip()]
            fragment = bool(before) and bool(_FRAGMENT.search(before[-1]))
            line = text[: match.start()].count("\n") + 1
            found.append(Block(path, line, match.group(1).lower(), match.group(2), fragment))
    return found


PYTHON = [b for b in blocks() if b.language in ("python", "py")]
YAML = [b for b in blocks() if b.language in ("yaml", "yml")]


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_the_documents_have_examples() -> None:
    assert len(PYTHON) >= 15 and any(not b.fragment for b in PYTHON)


@pytest.mark.parametrize("block", PYTHON, ids=[b.name for b in PYTHON])
def test_a_python_example_runs_as_written(
    block: Block,
    statek_simulator: object,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT if block.fragment else 0
    code = compile(block.code, block.name, "exec", flags=flags, dont_inherit=True)
    if block.fragment:
        return
    if "9469" in block.code and not _port_free(9469):
        pytest.skip("port 9469 is held by another process")
    monkeypatch.chdir(tmp_path)  # files an example writes land here
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "PROMETHEUS_MULTIPROC_DIR", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    if "multiprocess" in block.code:  # the examples of the multiprocess set-up run with its variable
        (tmp_path / "metrics").mkdir()
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    custom = set(registry.registered_providers())
    statek.shutdown()  # an example sets up its own exporters, as in a fresh process
    try:
        exec(code, {"__name__": "__docs_example__"})  # noqa: S102 - running the docs is the point
    finally:
        statek.shutdown()
        statek.uninstrument_httpx()
        for name in set(registry.registered_providers()) - custom:
            registry._unregister(name)


@pytest.mark.parametrize("block", YAML, ids=[b.name for b in YAML])
def test_a_yaml_example_parses(block: Block) -> None:
    assert yaml.safe_load(block.code) is not None
