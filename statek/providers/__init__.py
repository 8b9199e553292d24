"""Provider integrations, one module per wire format, and the registry that names them.

- :mod:`statek.providers.openai_compat`: OpenAI chat completions (the shared implementation).
- :mod:`statek.providers.catalog`: the OpenAI-compatible providers, one row and one class each.
- :mod:`statek.providers.anthropic`: Anthropic Messages (``ClaudeAI_API``).
- :mod:`statek.providers.vertex`: Gemini / Vertex AI generateContent (``VertexAI_API``).
- :mod:`statek.providers.registry`: ``get_provider`` / ``add_provider``.

Nothing is imported here, so that ``import statek`` stays light; the classes are reachable from
``statek`` and ``statek.llm_api`` as the public contract documents.
"""
