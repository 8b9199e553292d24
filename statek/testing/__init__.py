"""A loopback LLM provider for tests, demos and benchmarks: no keys, no network, exact usage.

:class:`ProviderSimulator` serves the OpenAI chat-completions, Responses and embeddings, Anthropic
Messages and Gemini / Vertex ``generateContent`` (and embeddings) wire formats on 127.0.0.1 from a background thread (HTTP/1.1 keep-alive,
hundreds of concurrent connections), and the very same answers in-process through
:meth:`ProviderSimulator.transport`. Each model answers as its :class:`ModelBehavior` says: text,
tool calls, usage with cache reads/writes and reasoning, a provider-reported cost, latency, and a
failure plan (:class:`Failure`: 429 with ``Retry-After``, 5xx, malformed JSON, hard 4xx, dropped
connections). Every request is recorded with the usage its answer reported, in statek's one meaning,
so a test can check an adapter's numbers against the truth::

    import asyncio
    from statek import LLM_API, ChatHistoryItem, ChatRole
    from statek.testing import Failure, ModelBehavior, ProviderSimulator

    behaviors = {
        "gpt-4o-mini": ModelBehavior(
            text="Paris.",
            input_tokens=1200, cached_tokens=1024, output_tokens=3, cost="0.000042",
            failures=[Failure.rate_limit(first=1, retry_after=0)],   # the first call gets a 429
        ),
    }
    with ProviderSimulator(behaviors, seed=7) as sim:
        api = LLM_API.get("OPENROUTER", api_url=sim.openai_url, api_key="test-key")
        question = [ChatHistoryItem(ChatRole.USER, "Capital of France?")]
        response = asyncio.run(api.process_request(model="gpt-4o-mini", chat_history=question))
        first, second = sim.requests
        assert first.status == 429 and second.status == 200
        assert not second.usage.mismatches(response.stats)   # every token count and the cost match

Without a server, in-process: ``httpx.AsyncClient(transport=sim.transport())``.

Usage is planned once, in statek's meaning (``input_tokens`` includes cache reads and writes,
``output_tokens`` includes reasoning), and rendered in each wire's own convention: OpenAI keeps the
cache inside ``prompt_tokens`` and reasoning inside ``completion_tokens``; Anthropic's
``input_tokens`` excludes cache reads and writes (writes split 5m/1h); Gemini's ``promptTokenCount``
includes ``cachedContentTokenCount`` while ``thoughtsTokenCount`` sits outside
``candidatesTokenCount``. ``RecordedRequest.usage`` is what the answer conveyed (a part a wire
cannot express is dropped, e.g. cache writes on Gemini), ``wire_usage`` the raw usage object.
"""

from __future__ import annotations

from .behavior import Failure, FailureKind, ModelBehavior, StreamUsage, ToolCallSpec, Usage
from .blackhole import BlackHole
from .environment import SIMULATED_API_KEY, simulator_environment
from .exchange import Outcome, RecordedRequest, SimRequest, Wire
from .simulator import ProviderSimulator
from .transport import SimulatorTransport

__all__ = [
    "BlackHole",
    "Failure",
    "FailureKind",
    "ModelBehavior",
    "Outcome",
    "ProviderSimulator",
    "RecordedRequest",
    "SIMULATED_API_KEY",
    "SimRequest",
    "SimulatorTransport",
    "StreamUsage",
    "ToolCallSpec",
    "Usage",
    "Wire",
    "simulator_environment",
]
