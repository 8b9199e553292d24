"""The demo's simulated providers: which models answer, how, and how their prompt caches behave.

Each :class:`DemoModel` is a real provider key and model name (so the shipped price table prices it)
served by the loopback :class:`~statek.testing.ProviderSimulator` with a behaviour that looks like the
real thing: usage from the actual request body, cache reads when a prompt prefix was seen before
(OpenAI, DeepSeek, Gemini: automatic; Anthropic: where the request put ``cache_control``, with cache
writes on first use), reasoning tokens, tool calls, a provider-reported cost (OpenRouter), a model no
price row covers (a fine-tune on vLLM), and a failure plan: 429 with ``Retry-After``, 5xx and dropped
connections (retried by statek) and a few hard failures.

The answers' token counts come from the request (one token per four body bytes, like the simulator's
own tokenizer), so a 230k-token document really is a 920 kB request.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .._http import RETRYABLE_STATUS
from ..testing import Failure, ModelBehavior, SimRequest, ToolCallSpec, Usage, Wire

__all__ = ["DemoModel", "PromptCache", "describe_failure", "simulated_models"]

_SCOPES_KEPT = 4_096  # conversations whose prefixes the cache remembers (oldest forgotten): bounded memory


@dataclass(frozen=True, slots=True)
class CacheRule:
    """How one provider caches prompts.

    ``explicit``: only requests carrying ``cache_control`` read or write (Anthropic), and they write
    what was not read; otherwise caching is automatic and reports reads only. Reads below
    ``minimum`` tokens do not happen; reads are rounded down to a multiple of ``increment``.
    """

    minimum: int = 1024
    increment: int = 1
    explicit: bool = False


class PromptCache:
    """A provider-side prompt cache, emulated: the longest previously seen prompt prefix is a hit.

    A prompt is cut into segments (tools, system prompt, then each message, in wire order); a prefix
    of segments seen before (for the same model) is read from cache. The first ``head`` segments
    (tools and system prompt, shared by a whole fleet) are taken as already cached, as in a fleet that
    has been running; what follows is looked up in its conversation's own scope (the model and the
    prompt up to its first message after the head), so whether a prefix hits never depends on the
    order concurrent conversations arrive in. Scopes are forgotten oldest first past
    :data:`_SCOPES_KEPT`. Thread-safe: the simulator calls it from its own thread.
    """

    def __init__(self) -> None:
        self._scopes: OrderedDict[bytes, set[bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def lookup(self, model: str, segments: list[str], rule: CacheRule, head: int = 0) -> tuple[int, int]:
        """``(cache_read_tokens, cache_write_tokens)`` for a prompt made of ``segments``; remembers it."""
        digest = hashlib.blake2b(model.encode(), digest_size=16)
        prefixes: list[tuple[bytes, int]] = []
        tokens = 0
        for segment in segments:
            digest.update(segment.encode())
            tokens += math.ceil(len(segment) / 4)
            prefixes.append((digest.copy().digest(), tokens))
        marked = not rule.explicit or any("cache_control" in s for s in segments)
        if not prefixes:
            return 0, 0
        scope = prefixes[min(head, len(prefixes) - 1)][0]
        warm = prefixes[head - 1][1] if 0 < head <= len(prefixes) and marked else 0
        with self._lock:
            seen = self._scopes.pop(scope, None)
            seen = set() if seen is None else seen
            self._scopes[scope] = seen
            if len(self._scopes) > _SCOPES_KEPT:
                self._scopes.popitem(last=False)
            hit = max(warm, max((t for key, t in prefixes if key in seen), default=0))
            if marked:
                seen.update(key for key, _ in prefixes)
        read = hit - hit % rule.increment if hit >= rule.minimum else 0
        if not rule.explicit or not marked:
            return read, 0
        written = tokens - read
        return read, written if tokens >= rule.minimum else 0


def _segments(wire: Wire, body: Mapping[str, Any]) -> tuple[list[str], int]:
    """The prompt's segments in wire order, and how many of them are the shared head (tools, system)."""

    def dump(value: Any) -> str:
        return json.dumps(value, separators=(",", ":"), sort_keys=True)

    if wire == "anthropic":
        head = [body.get("tools"), body.get("system")]
        turns = list(body.get("messages") or [])
    elif wire == "gemini":
        head = [body.get("tools"), body.get("systemInstruction")]
        turns = list(body.get("contents") or [])
    else:
        head = [body.get("tools")]
        turns = list(body.get("messages") or [])
        while turns and isinstance(turns[0], dict) and turns[0].get("role") in ("system", "developer"):
            head.append(turns.pop(0))
    shared = [dump(part) for part in head if part]
    return shared + [dump(turn) for turn in turns], len(shared)


def _wants_reasoning(wire: Wire, body: Mapping[str, Any]) -> bool:
    if wire == "anthropic":
        return "thinking" in body
    if wire == "gemini":
        return bool((body.get("generationConfig") or {}).get("thinkingConfig"))
    return "reasoning_effort" in body or "reasoning" in body


@dataclass(frozen=True)
class UsageModel:
    """How many tokens one simulated model uses per request. ``reasoning`` applies when the request
    asks for it, or always with ``always_reasons``. ``cost_per_m`` makes the provider report a cost."""

    wire: Wire
    output: tuple[int, int]
    cache: CacheRule | None = None
    reasoning: tuple[int, int] = (0, 0)
    always_reasons: bool = False
    cost_per_m: tuple[Decimal, Decimal] | None = None
    caches: PromptCache = field(default_factory=PromptCache, compare=False)

    def __call__(self, request: SimRequest) -> Usage:
        body = request.body if isinstance(request.body, dict) else {}
        rng = random.Random(f"{request.model}:{request.index}")
        prompt = max(math.ceil(request.body_bytes / 4), 1)
        read = written = 0
        if self.cache is not None:
            segments, head = _segments(self.wire, body)
            read, written = self.caches.lookup(request.model or "", segments, self.cache, head)
            read, written = min(read, prompt), min(written, prompt - min(read, prompt))
        reasoning = 0
        if self.always_reasons or _wants_reasoning(self.wire, body):
            reasoning = rng.randint(*self.reasoning)
        output = rng.randint(*self.output) + reasoning
        cost = None
        if self.cost_per_m is not None:
            cost = (prompt * self.cost_per_m[0] + output * self.cost_per_m[1]) / 1_000_000
        return Usage(
            input_tokens=prompt,
            output_tokens=output,
            cached_tokens=read,
            cache_write_tokens=written,
            reasoning_tokens=reasoning,
            cost=cost,
        )


@dataclass(frozen=True)
class DemoModel:
    """One provider/model the demo sends traffic to, and how the simulator answers as it.

    ``provider`` is the registry name given to ``LLM_API.get``; ``settings`` are extra keyword
    arguments for it (e.g. ``use_prompt_caching``). ``note`` says what the model shows in the demo.
    """

    provider: str
    model: str
    wire: Wire
    behavior: ModelBehavior
    note: str
    settings: Mapping[str, Any] = field(default_factory=dict)


def _text(kind: str) -> Callable[[SimRequest], str]:
    def answer(request: SimRequest) -> str:
        asked = " ".join(request.prompt_text.split()[:8])
        return f"[{kind}] {asked}… (simulated answer)"

    return answer


_PLANNER_TOOLS = (
    ToolCallSpec("search_knowledge_base", {"query": "refund policy for damaged items"}),
    ToolCallSpec("get_order", {"order_id": "A-1042"}),
)
_OPENAI_CACHE = CacheRule(minimum=1024, increment=128)
_DEEPSEEK_CACHE = CacheRule(minimum=64, increment=64)
_ANTHROPIC_CACHE = CacheRule(minimum=1024, explicit=True)
_GEMINI_CACHE = CacheRule(minimum=1024)


def simulated_models() -> tuple[DemoModel, ...]:
    """The demo's fleet of models, each with its simulated behaviour (fresh caches every call)."""
    latency = (0.04, 0.35)
    return (
        DemoModel(
            "OPENAI",
            "gpt-4o-mini",
            "openai",
            ModelBehavior(
                text=_text("chat"),
                usage=UsageModel("openai", (60, 420), _OPENAI_CACHE),
                latency=latency,
                failures=[Failure.rate_limit(every=17, retry_after=1)],
            ),
            "chat; automatic prompt caching; 429 with Retry-After",
        ),
        DemoModel(
            "OPENAI",
            "gpt-5.4-mini",
            "openai",
            ModelBehavior(
                text="",
                tool_calls=_PLANNER_TOOLS,
                usage=UsageModel("openai", (40, 120), _OPENAI_CACHE, (64, 512), always_reasons=True),
                latency=latency,
                failures=[Failure.server_error(status=500, every=29)],
            ),
            "agent planner: tool calls; 500s retried",
        ),
        DemoModel(
            "OPENAI",
            "gpt-5-mini",
            "openai",
            ModelBehavior(
                text=_text("reasoning"),
                usage=UsageModel("openai", (150, 700), _OPENAI_CACHE, (800, 6000), always_reasons=True),
                latency=(0.2, 0.8),
                failures=[Failure.hard(400, every=5, message="max_completion_tokens is too large")],
            ),
            "reasoning tokens; a few hard 400s",
        ),
        DemoModel(
            "ANTHROPIC",
            "claude-sonnet-4-5",
            "anthropic",
            ModelBehavior(
                text="",
                tool_calls=_PLANNER_TOOLS,
                usage=UsageModel("anthropic", (60, 180), _ANTHROPIC_CACHE),
                latency=latency,
                failures=[Failure.server_error(status=529, every=19, retry_after=0.2)],
            ),
            "agent planner: tool calls, cache writes then reads; 529 overloaded, retried",
            {"use_prompt_caching": True},
        ),
        DemoModel(
            "ANTHROPIC",
            "claude-haiku-4-5",
            "anthropic",
            ModelBehavior(
                text=_text("answer"),
                usage=UsageModel("anthropic", (80, 500), _ANTHROPIC_CACHE),
                latency=latency,
            ),
            "chat and agent answers; cache writes then reads",
            {"use_prompt_caching": True},
        ),
        DemoModel(
            "GEMINI",
            "gemini-2.5-pro",
            "gemini",
            ModelBehavior(
                text=_text("summary"),
                usage=UsageModel("gemini", (300, 1200), _GEMINI_CACHE),
                latency=(0.2, 0.9),
            ),
            "long documents; implicit cache; >200k-token prompts priced at the long-context rate",
        ),
        DemoModel(
            "GEMINI",
            "gemini-2.5-flash",
            "gemini",
            ModelBehavior(
                text=_text("flash"),
                usage=UsageModel("gemini", (60, 400), _GEMINI_CACHE, (300, 3000)),
                latency=latency,
                failures=[Failure.rate_limit(every=23, retry_after=1)],
            ),
            "chat and thinking; 429 with Retry-After",
        ),
        DemoModel(
            "DEEPSEEK",
            "deepseek-chat",
            "openai",
            ModelBehavior(
                text=_text("chat"),
                usage=UsageModel("openai", (60, 420), _DEEPSEEK_CACHE),
                latency=latency,
                failures=[Failure.server_error(status=503, every=13)],
            ),
            "chat, streamed (time to first token); cache hits; 503s retried",
            {"stream": True},
        ),
        DemoModel(
            "DEEPSEEK",
            "deepseek-reasoner",
            "openai",
            ModelBehavior(
                text=_text("reasoning"),
                usage=UsageModel("openai", (150, 600), _DEEPSEEK_CACHE, (500, 4000), always_reasons=True),
                latency=(0.2, 0.8),
                failures=[Failure.disconnect(every=6)],
            ),
            "reasoning; dropped connections, retried",
        ),
        DemoModel(
            "OPENROUTER",
            "meta-llama/llama-3.3-70b-instruct",
            "openai",
            ModelBehavior(
                text=_text("llama"),
                usage=UsageModel("openai", (80, 600), cost_per_m=(Decimal("0.13"), Decimal("0.40"))),
                latency=latency,
                failures=[Failure.hard(402, every=7, message="Insufficient credits")],
            ),
            "cost reported by the provider (no price row); a few 402s",
        ),
        DemoModel(
            "VLLM",
            "acme/support-llama-8b-ft",
            "openai",
            ModelBehavior(
                text=_text("in-house"),
                usage=UsageModel("openai", (60, 300)),
                latency=(0.02, 0.15),
                failures=[Failure.malformed(every=6)],
            ),
            "self-hosted fine-tune: no price anywhere, shown as unpriced (never $0); a malformed answer",
        ),
    )


def describe_failure(failure: Failure) -> str:
    """One line saying what the simulator does wrong, how often, and what statek makes of it."""
    often = f"about 1 in {failure.every} requests" if failure.every else "some requests"
    if failure.kind == "malformed":
        return f"{often} get a 200 answer cut off mid-body (not JSON): the call fails, as does its job"
    if failure.kind == "disconnect":
        return f"{often} lose the connection before an answer: statek retries"
    wait = f" with Retry-After {failure.retry_after:g} s" if failure.retry_after is not None else ""
    if failure.status in RETRYABLE_STATUS:
        return f"{often} get HTTP {failure.status}{wait}: statek retries"
    said = f" {failure.message!r}" if failure.message else ""
    return f"{often} get HTTP {failure.status}{said}: not retryable, the job fails"
