"""One codec per wire format: pure functions that read provider answers into statek's types.

* :mod:`~statek.wire.openai_chat`: OpenAI chat completions (every OpenAI-compatible provider);
* :mod:`~statek.wire.anthropic_messages`: Anthropic Messages;
* :mod:`~statek.wire.gemini`: Gemini / Vertex AI ``generateContent``;
* :mod:`~statek.wire.sse`: server-sent events, read incrementally;
* :mod:`~statek.wire.numbers`: token counts and reported cost out of JSON, within :mod:`statek.limits`;
* :mod:`~statek.wire.billing`: the service tier, the audio/image split and the itemised parts of a
  reported cost (BYOK, server tools, request fees) that answers report;
* :mod:`~statek.wire.validation`: the pydantic models' building blocks and the guard every entry point
  wears, so that a malformed answer only ever raises :class:`~statek.wire.errors.WireFormatError`;
* :mod:`~statek.wire.errors`: what a codec raises for an answer it cannot read.

Codecs do no HTTP and no telemetry and import nothing of statek but the leaf modules
:mod:`statek.types`, :mod:`statek.limits` and :mod:`statek.secrets`: the
``LLM_API`` providers and the httpx transport (:mod:`statek.instrumentation`) both read answers with
them, so that a call is parsed the same way whichever door it came through.
"""
