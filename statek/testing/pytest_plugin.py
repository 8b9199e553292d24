"""A pytest plugin: the ``statek_simulator`` fixture runs your code against the provider simulator.

Enable it in a ``conftest.py`` (``pytest_plugins = ["statek.testing.pytest_plugin"]``) or on the
command line (``pytest -p statek.testing.pytest_plugin``). In a test, ``statek_simulator`` is a
running :class:`~statek.testing.ProviderSimulator` (every model answers with the default
:class:`~statek.testing.ModelBehavior`; change one with ``set_behavior``) and every built-in
provider's ``NAME_API_URL`` / ``NAME_API_KEY`` points at it (:func:`simulator_environment`), so
``LLM_API.get("OPENAI")`` and ``OpenAI()`` reach it with no key and no network. The variables are
restored after the test. See docs/testing.md.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .environment import simulator_environment
from .simulator import ProviderSimulator

__all__ = ["statek_simulator"]


@pytest.fixture
def statek_simulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProviderSimulator]:
    """A running simulator with every built-in provider's settings pointing at it (one test)."""
    with ProviderSimulator() as sim:
        for name, value in simulator_environment(sim).items():
            monkeypatch.setenv(name, value)
        yield sim
