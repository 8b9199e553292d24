"""Point every built-in provider's settings at a running :class:`~statek.testing.ProviderSimulator`.

:func:`simulator_environment` gives the environment variables that make ``LLM_API.get(NAME)`` (and
the official OpenAI and Anthropic SDKs) reach the simulator instead of the provider: your own code,
unchanged, runs against it without keys or network. The pytest fixture ``statek_simulator``
(:mod:`statek.testing.pytest_plugin`) sets them for one test.
"""

from __future__ import annotations

from .simulator import ProviderSimulator

__all__ = ["SIMULATED_API_KEY", "simulator_environment"]

SIMULATED_API_KEY = "simulated-key"
"""The key every provider is given (the simulator accepts any)."""


def simulator_environment(sim: ProviderSimulator) -> dict[str, str]:
    """``NAME_API_URL`` / ``NAME_API_KEY`` for every built-in provider key (each OpenAI-compatible one
    at the chat-completions URL, ``ANTHROPIC`` at Messages, ``VERTEXAI`` and ``GEMINI`` at the Gemini
    API), ``OPENAI_BASE_URL`` / ``ANTHROPIC_BASE_URL`` for the official SDKs, and ``GEMINI_API_KEY``
    / ``GOOGLE_API_KEY`` for ``google-genai`` (its URL is set with ``http_options``)."""
    from ..providers.catalog import CATALOG

    env = {f"{row.key}_API_URL": sim.openai_url for row in CATALOG}
    env.update({"ANTHROPIC_API_URL": sim.anthropic_url})
    env.update({"VERTEXAI_API_URL": sim.gemini_url, "GEMINI_API_URL": sim.gemini_url})
    env.update({name.replace("_API_URL", "_API_KEY"): SIMULATED_API_KEY for name in list(env)})
    env.update(
        {
            "OPENAI_BASE_URL": sim.openai_base_url,
            "ANTHROPIC_BASE_URL": sim.base_url,
            "GOOGLE_API_KEY": SIMULATED_API_KEY,
        }
    )
    return env
