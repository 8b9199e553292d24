"""What a simulated model does: :class:`ModelBehavior`, its :class:`Failure` plan, and the planner.

A behaviour is pure configuration (a frozen dataclass). For each request the simulator calls
:func:`plan_reply` with the request and a random generator seeded from ``(seed, model, index)``,
where ``index`` counts the requests for that model name from 0. The planner returns either a
:class:`Reply` (text, tool calls, usage, ...) or a :class:`Fault`; the wire modules turn either into
bytes. Because the generator depends only on the seed, the model and the index, the same seed gives
the same answers in the same per-model order, however requests interleave.

Usage is planned in statek's one meaning (the :class:`~statek.llm_api.LLM_Stats` convention):
``input_tokens`` is the whole prompt, cache reads, cache writes and Gemini tool-use prompt tokens
included; ``output_tokens`` is everything generated, reasoning included. Each wire module renders it in
its own provider's convention.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .exchange import SimRequest

__all__ = [
    "Failure",
    "FailureKind",
    "Fault",
    "ModelBehavior",
    "Reply",
    "StreamUsage",
    "ToolCallSpec",
    "Usage",
    "plan_reply",
]

FailureKind = Literal["status", "malformed", "disconnect"]
"""``status``: an HTTP error answer; ``malformed``: HTTP 200 with a truncated, unparsable body;
``disconnect``: the connection is closed without an answer (a transport error for the client)."""

StreamUsage = Literal["requested", "always", "never"]
"""When an OpenAI-wire stream reports usage: on ``stream_options.include_usage``, always, or never."""

_TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
)


def _tokens_for(chars: int) -> int:
    """The simulator's tokenizer: one token per four characters, rounded up."""
    return math.ceil(chars / 4)


def _as_decimal(value: Decimal | str | float | None) -> Decimal | None:
    if value is None or isinstance(value, Decimal):
        return value
    # str(float) keeps the short decimal the user typed (0.1 -> "0.1"), not the binary expansion.
    return Decimal(str(value))


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts (and provider-reported cost) of one answer, in statek's one meaning.

    Field names match :class:`~statek.llm_api.LLM_Stats`, so a test can compare a recorded usage with
    what a provider adapter parsed (see :meth:`mismatches`). ``cached_tokens``, ``cache_write_tokens``
    and ``tool_use_prompt_tokens`` are parts of ``input_tokens``; ``cache_write_1h_tokens`` is part of
    ``cache_write_tokens``; ``reasoning_tokens`` is part of ``output_tokens``. ``cost`` is the USD
    amount the provider reported (OpenRouter-style ``usage.cost``), ``None`` when none was reported.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    tool_use_prompt_tokens: int = 0
    cost: Decimal | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "cost" and (not isinstance(value, int) or value < 0):
                raise ValueError(f"Usage.{f.name} must be a non-negative int, got {value!r}")
        if self.cached_tokens + self.cache_write_tokens + self.tool_use_prompt_tokens > self.input_tokens:
            raise ValueError(
                "cached_tokens + cache_write_tokens + tool_use_prompt_tokens must not exceed input_tokens "
                f"(they are parts of it): {self}"
            )
        if self.cache_write_1h_tokens > self.cache_write_tokens:
            raise ValueError("cache_write_1h_tokens is part of cache_write_tokens and cannot exceed it")
        if self.reasoning_tokens > self.output_tokens:
            raise ValueError("reasoning_tokens is part of output_tokens and cannot exceed it")
        object.__setattr__(self, "cost", _as_decimal(self.cost))

    @property
    def total_tokens(self) -> int:
        """Input plus output."""
        return self.input_tokens + self.output_tokens

    def mismatches(self, stats: Any) -> dict[str, tuple[Any, Any]]:
        """Fields where ``stats`` (an ``LLM_Stats`` or anything with the same attributes) differs.

        Returns ``{field: (reported_here, found_in_stats)}``; empty when everything the wire carried was
        parsed back exactly, so ``assert not record.usage.mismatches(response.stats)`` reads well.
        """
        names = (*_TOKEN_FIELDS, "cost")
        return {
            name: (getattr(self, name), getattr(stats, name, None))
            for name in names
            if getattr(self, name) != getattr(stats, name, None)
        }


@dataclass(frozen=True, slots=True)
class ToolCallSpec:
    """A tool call the simulated model makes: function ``name`` with keyword arguments ``kwargs``.

    ``id`` is the call id on the wire; left ``None`` the simulator makes a deterministic one
    (``call_...`` for OpenAI, ``toolu_...`` for Anthropic; Gemini calls carry no id unless given).
    """

    name: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    """One entry of a behaviour's failure plan: what goes wrong, and for which requests.

    Triggers count the requests *for one model name* from 0 (``index``); a failure applies when any
    trigger matches: ``first`` (index < first), ``every`` (every k-th request: indices k-1, 2k-1, ...),
    ``on`` (exact indices) or ``probability`` (drawn from the seeded generator, so deterministic).
    With no trigger at all the failure applies to every request. Plans are checked in order; the
    first that applies wins.

    ``status`` failures answer with the wire format's own error body; ``retry_after`` (seconds) adds
    a ``Retry-After`` header. Prefer the constructors: :meth:`rate_limit`, :meth:`server_error`,
    :meth:`hard`, :meth:`malformed`, :meth:`disconnect`.
    """

    status: int = 500
    kind: FailureKind = "status"
    first: int | None = None
    every: int | None = None
    on: frozenset[int] = frozenset()
    probability: float | None = None
    retry_after: float | None = None
    message: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "on", frozenset(self.on))
        if self.kind not in ("status", "malformed", "disconnect"):
            raise ValueError(f"unknown failure kind {self.kind!r}")
        if self.kind == "status" and not 400 <= self.status <= 599:
            raise ValueError(f"a status failure needs a 4xx/5xx status, got {self.status}")
        if self.first is not None and self.first < 0:
            raise ValueError("first must be >= 0")
        if self.every is not None and self.every < 1:
            raise ValueError("every must be >= 1")
        if self.probability is not None and not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be in [0, 1]")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError("retry_after must be >= 0")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def rate_limit(
        cls,
        *,
        first: int | None = None,
        every: int | None = None,
        on: Iterable[int] = (),
        probability: float | None = None,
        retry_after: float | None = 1.0,
        status: int = 429,
    ) -> Failure:
        """HTTP 429 with ``Retry-After: retry_after`` (seconds; ``None`` sends no header)."""
        return cls(status, "status", first, every, frozenset(on), probability, retry_after)

    @classmethod
    def server_error(
        cls,
        *,
        status: int = 503,
        first: int | None = None,
        every: int | None = None,
        on: Iterable[int] = (),
        probability: float | None = None,
        retry_after: float | None = None,
    ) -> Failure:
        """A 5xx answer (retryable for statek's HTTP layer)."""
        return cls(status, "status", first, every, frozenset(on), probability, retry_after)

    @classmethod
    def hard(
        cls,
        status: int = 400,
        *,
        first: int | None = None,
        every: int | None = None,
        on: Iterable[int] = (),
        probability: float | None = None,
        message: str | None = None,
    ) -> Failure:
        """A non-retryable error answer (400 by default; 401/403/404 work too)."""
        return cls(status, "status", first, every, frozenset(on), probability, None, message)

    @classmethod
    def malformed(
        cls,
        *,
        first: int | None = None,
        every: int | None = None,
        on: Iterable[int] = (),
        probability: float | None = None,
    ) -> Failure:
        """HTTP 200 whose body is the real answer cut in half: not valid JSON."""
        return cls(200, "malformed", first, every, frozenset(on), probability)

    @classmethod
    def disconnect(
        cls,
        *,
        first: int | None = None,
        every: int | None = None,
        on: Iterable[int] = (),
        probability: float | None = None,
    ) -> Failure:
        """Close the connection without answering (httpx raises ``RemoteProtocolError``)."""
        return cls(200, "disconnect", first, every, frozenset(on), probability)

    def applies(self, index: int, rng: random.Random) -> bool:
        """Whether this failure hits the ``index``-th request for its model."""
        # Draw first, so the generator advances the same way whichever trigger matches.
        drawn = rng.random() if self.probability is not None else 1.0
        if self.first is None and self.every is None and not self.on and self.probability is None:
            return True
        return (
            (self.first is not None and index < self.first)
            or (self.every is not None and index % self.every == self.every - 1)
            or index in self.on
            or (self.probability is not None and drawn < self.probability)
        )


@dataclass(frozen=True)
class ModelBehavior:
    """How one simulated model answers. Every field has a sensible default; set only what you test.

    Content:
        ``text``: the answer, or a callable ``(SimRequest) -> str`` (runs in the simulator's thread;
        ``request.prompt_text`` is the last user message). ``tool_calls``: :class:`ToolCallSpec` items or
        ``(name, kwargs)`` pairs; with tool calls the finish reason becomes the wire's tool-call reason.
        ``thinking``: reasoning text, shown as an Anthropic ``thinking`` block, an OpenAI
        ``reasoning_content`` and a Gemini ``thought`` part (the latter only when the request set
        ``thinkingConfig.includeThoughts``). ``truncated``: finish as if ``max_tokens`` was hit.

    Usage (statek's meaning, see :class:`Usage`; rendered per wire convention):
        ``input_tokens`` ``None`` derives it from the request, one token per 4 body bytes (at least the
        sum of its parts). ``output_tokens`` ``None`` derives it from text, tool-call arguments and
        reasoning, one token per 4 characters. ``reasoning_tokens`` ``None`` derives it from
        ``thinking`` (0 without). ``cached_tokens`` (cache reads), ``cache_write_tokens`` (of which
        ``cache_write_1h_tokens`` one-hour writes, Anthropic only) and ``tool_use_prompt_tokens``
        (Gemini only) are parts of the input. A wire that cannot express a part drops it from what it
        reports (Gemini reports no cache writes; only Anthropic splits 5m/1h). ``usage``, a callable
        ``(SimRequest) -> Usage``, overrides all of these. ``cost``: provider-reported USD, rendered as
        OpenRouter's ``usage.cost`` on the OpenAI wire (other wires carry no cost). Set it only for
        models you call as OpenRouter-like providers: adapters of providers that report no cost (OpenAI
        itself, ...) rightly ignore the field, and ``Usage.mismatches`` will then show the cost.

    Everything else:
        ``response_model``: the model name in the answer (default: the requested one). ``latency``:
        seconds before the answer, fixed or a ``(low, high)`` range drawn from the seeded generator.
        ``failures``: the failure plan, see :class:`Failure`. ``stream_chunk_chars`` and
        ``stream_interval`` shape streamed answers (characters per chunk, seconds between chunks).
        ``stream_usage`` says when an OpenAI-wire stream ends with a usage chunk: ``"requested"`` (with
        ``stream_options.include_usage``, as OpenAI does), ``"always"`` (OpenRouter, Mistral,
        Perplexity) or ``"never"`` (servers that ignore the option, e.g. llama.cpp).
    """

    text: str | Callable[[SimRequest], str] = "Hello from the statek simulator."
    tool_calls: Sequence[ToolCallSpec | tuple[str, Mapping[str, Any]]] = ()
    thinking: str | None = None
    truncated: bool = False
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int | None = None
    tool_use_prompt_tokens: int = 0
    usage: Callable[[SimRequest], Usage] | None = None
    cost: Decimal | str | float | None = None
    response_model: str | None = None
    latency: float | tuple[float, float] = 0.0
    failures: Sequence[Failure] = ()
    stream_chunk_chars: int = 16
    stream_interval: float = 0.0
    stream_usage: StreamUsage = "requested"

    def __post_init__(self) -> None:
        calls = tuple(
            c if isinstance(c, ToolCallSpec) else ToolCallSpec(c[0], dict(c[1])) for c in self.tool_calls
        )
        object.__setattr__(self, "tool_calls", calls)
        object.__setattr__(self, "failures", tuple(self.failures))
        object.__setattr__(self, "cost", _as_decimal(self.cost))
        low, high = self.latency if isinstance(self.latency, tuple) else (self.latency, self.latency)
        if not 0 <= low <= high:
            raise ValueError(f"latency must be >= 0 (and low <= high for a range), got {self.latency!r}")
        if self.stream_usage not in ("requested", "always", "never"):
            raise ValueError(
                f"stream_usage must be 'requested', 'always' or 'never', not {self.stream_usage!r}"
            )
        if self.stream_chunk_chars < 1 or self.stream_interval < 0:
            raise ValueError("stream_chunk_chars must be >= 1 and stream_interval >= 0")
        for name in (
            "cached_tokens",
            "cache_write_tokens",
            "cache_write_1h_tokens",
            "tool_use_prompt_tokens",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        # Impossible explicit numbers fail here, not on the first request.
        parts = self.cached_tokens + self.cache_write_tokens + self.tool_use_prompt_tokens
        if self.input_tokens is not None and parts > self.input_tokens:
            raise ValueError(
                "cached + cache write + tool-use prompt tokens exceed input_tokens (they are parts of it)"
            )
        if self.cache_write_1h_tokens > self.cache_write_tokens:
            raise ValueError("cache_write_1h_tokens is part of cache_write_tokens and cannot exceed it")
        output, reasoning = self.output_tokens, self.reasoning_tokens
        if output is not None and reasoning is not None and reasoning > output:
            raise ValueError("reasoning_tokens is part of output_tokens and cannot exceed it")

    def _usage(self, body_bytes: int, text: str, calls: tuple[ToolCallSpec, ...]) -> Usage:
        reasoning = self.reasoning_tokens
        if reasoning is None:
            reasoning = _tokens_for(len(self.thinking)) if self.thinking else 0
        output = self.output_tokens
        if output is None:
            call_chars = sum(len(c.name) + len(json.dumps(dict(c.kwargs))) for c in calls)
            output = _tokens_for(len(text)) + _tokens_for(call_chars) + reasoning
        parts = self.cached_tokens + self.cache_write_tokens + self.tool_use_prompt_tokens
        prompt = (
            self.input_tokens if self.input_tokens is not None else max(_tokens_for(body_bytes), parts, 1)
        )
        return Usage(
            input_tokens=prompt,
            output_tokens=output,
            cached_tokens=self.cached_tokens,
            cache_write_tokens=self.cache_write_tokens,
            cache_write_1h_tokens=self.cache_write_1h_tokens,
            reasoning_tokens=reasoning,
            tool_use_prompt_tokens=self.tool_use_prompt_tokens,
            cost=self.cost,  # type: ignore[arg-type]
        )


@dataclass(frozen=True, slots=True)
class Reply:
    """A planned successful answer, wire-neutral. ``token`` seeds the ids each wire puts on it."""

    text: str
    tool_calls: tuple[ToolCallSpec, ...]
    call_tokens: tuple[str, ...]
    thinking: str | None
    usage: Usage
    response_model: str
    finish: Literal["stop", "tool_calls", "length"]
    token: str
    latency: float
    chunk_chars: int
    interval: float
    stream_usage: StreamUsage


@dataclass(frozen=True, slots=True)
class Fault:
    """A planned failure. ``reply`` is the answer a malformed body is cut from."""

    failure: Failure
    latency: float
    reply: Reply


def plan_reply(behavior: ModelBehavior, request: SimRequest, rng: random.Random) -> Reply | Fault:
    """Decide the answer to ``request`` (the ``request.index``-th for its model) from ``behavior``.

    ``rng`` must be seeded per request; every random choice is drawn from it in a fixed order.
    """
    low, high = (
        behavior.latency if isinstance(behavior.latency, tuple) else (behavior.latency, behavior.latency)
    )
    latency = rng.uniform(low, high) if high > low else low
    token = f"{rng.getrandbits(96):024x}"
    failure = next((f for f in behavior.failures if f.applies(request.index, rng)), None)
    text = behavior.text(request) if callable(behavior.text) else behavior.text
    calls: tuple[ToolCallSpec, ...] = behavior.tool_calls  # type: ignore[assignment]  # a tuple since __post_init__
    call_tokens = tuple(f"{rng.getrandbits(96):024x}" for _ in calls)
    usage = (
        behavior.usage(request)
        if behavior.usage is not None
        else behavior._usage(request.body_bytes, text, calls)
    )
    finish: Literal["stop", "tool_calls", "length"] = (
        "length" if behavior.truncated else "tool_calls" if calls else "stop"
    )
    reply = Reply(
        text=text,
        tool_calls=calls,
        call_tokens=call_tokens,
        thinking=behavior.thinking,
        usage=usage,
        response_model=behavior.response_model or request.model or "unknown",
        finish=finish,
        token=token,
        latency=latency,
        chunk_chars=behavior.stream_chunk_chars,
        interval=behavior.stream_interval,
        stream_usage=behavior.stream_usage,
    )
    return Fault(failure, latency, reply) if failure is not None else reply
