"""The OpenAI chat-completions wire format (``POST .../chat/completions``): answers, streams, usage.

Pure functions over parsed JSON: no HTTP, no telemetry. Used by
:class:`~statek.providers.openai_compat.OpenAICompatible_API` for every OpenAI-compatible provider and
by the httpx transport (:mod:`statek.instrumentation`) for calls made by the official SDKs.

Where providers differ on the wire they differ as *data*: a :class:`ChatCompletionsProfile` says where
a provider puts cached tokens, whether its reasoning count is inside the output count, which field
carries its own cost report, how it wants reasoning requested and how it authenticates.

Normalised usage (see :mod:`statek.types`): ``input_tokens`` = ``prompt_tokens`` (cache reads and
writes already inside it for every OpenAI-shaped provider); ``output_tokens`` = ``completion_tokens``
plus the reasoning count when the profile says the provider reports reasoning outside the completion
count (xAI, Perplexity); provider cost is an exact ``Decimal`` in USD.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any, NamedTuple

from ..limits import MAX_COUNT
from ..secrets import clip
from ..types import CallDetail, CallParams
from .answer import Answer
from .billing import NO_MODALITIES, Modalities, openai_modalities, reported_billing, tier_label
from .errors import StreamFailure, ToolCallFormatError, WireFormatError
from .numbers import UsagePath, count, dig, reported_cost, text_id
from .sse import SSEDecoder, iter_sse_json
from .validation import Count, Label, WireModel, guarded, plain_counts, validated

__all__ = [
    "AuthStyle",
    "ChatAnswer",
    "ChatCompletionsProfile",
    "ChatStream",
    "ChatStreamReader",
    "OPENAI_PROFILE",
    "ReasoningRequest",
    "UsageCounts",
    "UsagePath",
    "answer_detail",
    "message_text",
    "normalise_usage",
    "read_answer",
    "read_stream",
    "read_whole",
    "tool_calls",
]


class ReasoningRequest(str, Enum):
    """How a provider wants reasoning switched on (only sent when the call asks for reasoning)."""

    EFFORT = "effort"
    """OpenAI style: ``"reasoning_effort": "low" | "medium" | "high"``."""
    OPENROUTER = "openrouter"
    """OpenRouter style: ``"reasoning": {"effort": e}`` / ``{"max_tokens": n}`` / ``{"enabled": true}``."""
    ENABLE_THINKING = "enable_thinking"
    """DashScope style: ``"enable_thinking": true`` (+ ``"thinking_budget"``)."""
    NONE = "none"
    """No request field: the model chosen decides (DeepSeek reasoner, Kimi thinking models)."""


class AuthStyle(str, Enum):
    """Which header carries the key."""

    BEARER = "bearer"
    """``Authorization: Bearer <key>``."""
    API_KEY_HEADER = "api-key"
    """``api-key: <key>`` (Azure OpenAI, Microsoft Foundry)."""


_CACHED = ("prompt_tokens_details", "cached_tokens")
_CACHE_WRITE = ("prompt_tokens_details", "cache_write_tokens")
_REASONING = ("completion_tokens_details", "reasoning_tokens")


@dataclass(frozen=True, slots=True)
class ChatCompletionsProfile:
    """Where one provider departs from OpenAI's chat-completions wire format. Defaults are OpenAI's.

    Usage paths are tried in order inside the ``usage`` object; the first present number wins.
    ``cost_path`` points at the provider's own cost report and ``cost_unit_usd`` converts it to USD
    (xAI reports ticks of 1e-10 USD). ``reasoning_from_total`` (kept for compatibility: now done for every profile) derives an unreported reasoning count as
    ``total_tokens - prompt_tokens - completion_tokens`` (Gemini's OpenAI layer counts thoughts only in
    the total). ``stream_usage_paths`` are tried on every streamed chunk (the
    last chunk carrying usage wins: counts there are totals, never summed). ``default_query`` is
    added to the URL unless the URL already carries that parameter or is an unversioned ``/v1/`` URL.
    """

    cached_tokens_paths: tuple[UsagePath, ...] = (_CACHED,)
    cache_write_paths: tuple[UsagePath, ...] = (_CACHE_WRITE,)
    reasoning_tokens_paths: tuple[UsagePath, ...] = (_REASONING,)
    reasoning_in_output: bool = True
    reasoning_from_total: bool = False
    cost_path: UsagePath | None = ("cost",)
    cost_unit_usd: Decimal = Decimal(1)
    reasoning_request: ReasoningRequest = ReasoningRequest.EFFORT
    default_reasoning_effort: str = "medium"
    max_tokens_field: str = "max_tokens"
    auth: AuthStyle = AuthStyle.BEARER
    extra_headers: tuple[tuple[str, str], ...] = ()
    default_query: tuple[tuple[str, str], ...] = ()
    send_stream_options: bool = True
    stream_usage_paths: tuple[UsagePath, ...] = (("usage",),)
    usage_like_openai: bool = field(init=False, repr=False, compare=False)
    """Derived, not set: whether ``usage`` is read with OpenAI's own paths, no cost unit or reasoning
    quirk (then :func:`read_whole` may take its fast path). Computed once, when the profile is made."""

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "usage_like_openai",
            self.cached_tokens_paths == (_CACHED,)
            and self.cache_write_paths == (_CACHE_WRITE,)
            and self.reasoning_tokens_paths == (_REASONING,)
            and self.cost_path == ("cost",)
            and self.reasoning_in_output,
        )


OPENAI_PROFILE = ChatCompletionsProfile()
"""OpenAI's own wire format, the default for an endpoint statek has no catalogue row for."""


class UsageCounts(NamedTuple):
    """One answer's usage in statek's meaning (see module docstring)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost: Decimal | None = None
    modalities: Modalities = NO_MODALITIES
    explained_cost: Decimal | None = None
    """The part of ``cost`` that is no token price (see :func:`~statek.wire.billing.reported_billing`)."""
    """Audio and image counts (see :mod:`statek.wire.billing`)."""


def _first_count(usage: Mapping[str, Any], paths: Sequence[UsagePath]) -> int | None:
    for path in paths:
        number = count(dig(usage, path))
        if number is not None:
            return number
    return None


class Usage(WireModel):
    """The counts every OpenAI-shaped ``usage`` object carries; a profile's own paths are read with
    :func:`~statek.wire.numbers.count`, under the same bounds."""

    prompt_tokens: Count = 0
    completion_tokens: Count = 0
    total_tokens: Count = 0


class Message(WireModel):
    """A choice's ``message`` (or a chunk's ``delta``), as far as statek reads it."""

    content: str | list[Any] | None = None
    tool_calls: list[Any] | None = None


class Choice(WireModel):
    index: int | None = 0
    message: Message | None = None
    delta: Message | None = None
    finish_reason: Label = None


class ChatBody(WireModel):
    """A whole answer or one stream chunk: ``choices``, ``model``, ``usage``."""

    choices: list[Choice] | None = None
    model: Label = None
    usage: dict[str, Any] | None = None


_USAGE_COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens")


def _plain_chat_body(body: Mapping[str, Any]) -> bool:
    """True only when :class:`ChatBody` accepts ``body`` (a sufficient condition, checked with plain
    type tests at a fraction of pydantic's cost: well-formed answers skip the model). False says
    nothing: validate."""
    choices = body.get("choices")
    if choices is not None:
        if type(choices) is not list:
            return False
        for choice in choices:
            if type(choice) is not dict:
                return False
            index = choice.get("index")
            if index is not None and type(index) is not int:
                return False
            for key in ("message", "delta"):
                message = choice.get(key)
                if message is None:
                    continue
                if type(message) is not dict:
                    return False
                content, calls = message.get("content"), message.get("tool_calls")
                if (content is not None and type(content) is not str and type(content) is not list) or (
                    calls is not None and type(calls) is not list
                ):
                    return False
    usage = body.get("usage")
    return usage is None or type(usage) is dict


def _label(value: Any) -> str | None:
    """What :data:`~statek.wire.validation.Label` makes of ``value``: its text, or ``None``."""
    return value if isinstance(value, str) else None


@guarded
def normalise_usage(usage: Any, profile: ChatCompletionsProfile) -> UsageCounts:
    """Read an OpenAI-shaped ``usage`` object as statek's one meaning, following ``profile``'s quirks.
    Raises :class:`WireFormatError` for a count or cost out of bounds."""
    if not isinstance(usage, Mapping):
        return UsageCounts()
    if type(usage) is dict and profile.usage_like_openai:
        fast = _openai_usage(usage)
        if fast is not None:
            return fast
    return _profile_usage(usage, profile)


def _profile_usage(usage: Mapping[str, Any], profile: ChatCompletionsProfile) -> UsageCounts:
    """:func:`normalise_usage`, the general way: every count validated, ``profile``'s paths walked."""
    if not plain_counts(usage, _USAGE_COUNTS):
        validated(Usage, usage, "usage")
    prompt = count(usage.get("prompt_tokens")) or 0
    completion = count(usage.get("completion_tokens")) or 0
    reasoning = _first_count(usage, profile.reasoning_tokens_paths)
    outside = not profile.reasoning_in_output
    if reasoning is None:
        # No reasoning count, yet a total above prompt + completion: the rest is generated tokens the
        # completion count leaves out (Gemini's OpenAI layer counts thoughts only in the total), billed
        # as output. OpenAI-shaped totals are otherwise exactly prompt + completion.
        rest = (count(usage.get("total_tokens")) or 0) - prompt - completion
        if rest > 0:
            reasoning, outside = rest, True
    reasoning = reasoning or 0
    cost = explained = None
    if profile.cost_path is not None:
        cost = reported_cost(dig(usage, profile.cost_path), profile.cost_unit_usd)
        cost, explained = reported_billing(usage, cost)
    return UsageCounts(
        input_tokens=prompt,
        output_tokens=completion + reasoning if outside else completion,
        cached_tokens=_first_count(usage, profile.cached_tokens_paths) or 0,
        cache_write_tokens=_first_count(usage, profile.cache_write_paths) or 0,
        reasoning_tokens=reasoning,
        cost=cost,
        modalities=openai_modalities(usage, prompt, completion),
        explained_cost=explained,
    )


_NO_DETAILS: Mapping[str, Any] = {}
"""An absent details object, read as an empty one (never written to). A dict, not a read-only
proxy: a proxy's ``get`` looks its mapping's ``get`` up by name on every call."""
OpenAICounts = tuple[int, int, int, int, int]
"""(input, output, cached, cache write, reasoning) tokens, as :class:`UsageCounts` names them."""


def _openai_counts(usage: dict[str, Any]) -> OpenAICounts | None:
    """The token counts :func:`_profile_usage` reads under a profile with OpenAI's own usage paths
    (:attr:`ChatCompletionsProfile.usage_like_openai`), for the plain shape: the counts absent,
    ``null`` or plain ints in ``[0, MAX_COUNT]``, the details objects absent or dicts of such counts,
    no audio or image count above 0, no ``cost`` (so the reading's cost, explained cost and modality
    split are all empty). ``None`` (read it the general way) for anything else. Never raises."""
    if "cost" in usage:
        return None
    prompt_details = usage.get("prompt_tokens_details")
    if prompt_details is None:
        prompt_details = _NO_DETAILS
    elif type(prompt_details) is not dict:
        return None
    completion_details = usage.get("completion_tokens_details")
    if completion_details is None:
        completion_details = _NO_DETAILS
    elif type(completion_details) is not dict:
        return None
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens")
    total = usage.get("total_tokens")
    # Every detail value, read or not, must be a plain count: a nested object (cached audio) or an
    # unusual value sends the whole usage the general way. One pass (the interpreter's specialised
    # type(x) costs less than a set of the types plus min and max of the numbers).
    for value in (prompt, completion, total, *prompt_details.values(), *completion_details.values()):
        if value is not None and (type(value) is not int or value < 0 or value > MAX_COUNT):
            return None
    if (
        prompt_details.get("audio_tokens")
        or prompt_details.get("image_tokens")
        or completion_details.get("audio_tokens")
        or completion_details.get("image_tokens")
    ):
        return None  # OpenAI sends them as 0; a count to split by modality is read the general way
    prompt = prompt or 0
    completion = completion or 0
    output = completion
    reasoning = completion_details.get("reasoning_tokens")
    if reasoning is None:  # a total above prompt + completion: the rest is generated (see above)
        rest = (total or 0) - prompt - completion
        if rest > 0:
            reasoning = rest
            output = completion + rest
    return (
        prompt,
        output,
        prompt_details.get("cached_tokens") or 0,
        prompt_details.get("cache_write_tokens") or 0,
        reasoning or 0,
    )


def _openai_usage(usage: dict[str, Any]) -> UsageCounts | None:
    """:func:`_profile_usage` under a profile with OpenAI's own usage paths, for the plain shape
    :func:`_openai_counts` reads; ``None`` for any other. Never raises."""
    counts = _openai_counts(usage)
    return None if counts is None else UsageCounts(*counts)


class ChatAnswer(NamedTuple):
    """The parts of one answer, whether it came whole or streamed. ``service_tier`` is the tier the
    answer names (top-level ``service_tier``), as :func:`~statek.wire.billing.tier_label` reads it."""

    message: Mapping[str, Any]
    finish_reason: str | None
    model: str | None
    usage: Any
    response_id: str | None = None
    service_tier: str | None = None


@guarded
def answer_detail(
    answer: ChatAnswer, profile: ChatCompletionsProfile, bytes_sent: int, bytes_received: int
) -> CallDetail:
    """The :class:`CallDetail` of ``answer`` (``has_usage`` False when it carried no usage object)."""
    counts = normalise_usage(answer.usage, profile)
    return CallDetail(
        total_bytes_sent=bytes_sent,
        total_bytes_received=bytes_received,
        cost=counts.cost,
        input_tokens=counts.input_tokens,
        output_tokens=counts.output_tokens,
        cached_tokens=counts.cached_tokens,
        cache_write_tokens=counts.cache_write_tokens,
        reasoning_tokens=counts.reasoning_tokens,
        response_model=answer.model,
        finish_reason=answer.finish_reason,
        has_usage=isinstance(answer.usage, Mapping),
        response_id=answer.response_id,
        # Perplexity bills a request by its search context size (low / medium / high): its tier
        service_tier=answer.service_tier
        or (
            tier_label(answer.usage.get("search_context_size")) if isinstance(answer.usage, Mapping) else None
        ),
        input_audio_tokens=counts.modalities[0],
        cached_audio_tokens=counts.modalities[1],
        output_audio_tokens=counts.modalities[2],
        input_image_tokens=counts.modalities[3],
        output_image_tokens=counts.modalities[4],
        explained_cost=counts.explained_cost,
    )


@guarded
def read_answer(body: Any) -> ChatAnswer:
    """The parts of a whole (non-streamed) answer. Raises :class:`WireFormatError` for a body that is
    not an object or does not follow the format, and :class:`StreamFailure` for one that carries an
    ``error`` object (with or without choices)."""
    if not isinstance(body, Mapping):
        raise WireFormatError(f"expected a JSON object, got {type(body).__name__}")
    if body.get("error"):
        raise StreamFailure(f"the answer is an error: {clip(json.dumps(body['error'], default=str), 300)}")
    if not _plain_chat_body(body):
        validated(ChatBody, body, "answer")  # raises for what the model refuses; else read as below
    choices = body.get("choices")
    first = choices[0] if choices else {}
    message = first.get("message")
    return ChatAnswer(
        message=message if isinstance(message, Mapping) else {},
        finish_reason=_label(first.get("finish_reason")),
        model=_label(body.get("model")) or None,
        usage=body.get("usage"),
        response_id=text_id(body.get("id")),
        service_tier=tier_label(body.get("service_tier")),
    )


@guarded
def read_stream(content: bytes, content_type: str, profile: ChatCompletionsProfile) -> ChatAnswer:
    """The answer a whole streamed body adds up to. A server that ignored ``"stream": true`` and sent
    one JSON object is read as such. Raises :class:`WireFormatError` for an error chunk or a chunk
    that is not JSON."""
    if "text/event-stream" not in content_type and content.lstrip()[:1] == b"{":
        try:
            body = json.loads(content)
        except ValueError as exc:
            raise WireFormatError(f"body is neither SSE nor JSON: {clip(repr(content), 200)}") from exc
        return read_answer(body)
    stream = ChatStream(profile.stream_usage_paths)
    try:
        for _, chunk in iter_sse_json(content):
            stream.add(chunk)
    except WireFormatError:
        raise
    except ValueError as exc:
        raise WireFormatError(f"a stream chunk is not JSON: {exc}") from exc
    return stream.answer()


_USAGE_ONLY: tuple[UsagePath, ...] = (("usage",),)
_UNSEEN: tuple[Any, ...] = ()
_HEAD_KEYS = ("model", "id", "service_tier", "usage", "error")
"""The fields of a chunk, besides ``choices``, that the common-chunk reading reads (or refuses)."""


@dataclass
class ChatStream:
    """Puts streamed chunks back together into one answer; fed one parsed chunk at a time."""

    usage_paths: tuple[UsagePath, ...] = _USAGE_ONLY
    keep_content: bool = True
    """False: read usage, model and finish reason only (text and tool calls are not kept)."""
    text: list[str] = field(default_factory=list)
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    finish_reason: str | None = None
    model: str | None = None
    usage: Any = None
    response_id: str | None = None
    service_tier: str | None = None
    _head: tuple[Any, ...] = field(default=_UNSEEN, init=False, repr=False, compare=False)
    """The raw :data:`_HEAD_KEYS` fields :meth:`_take_plain` read last (``()``: none since the last
    chunk read the general way)."""
    _usage_at_top: bool = field(default=False, init=False, repr=False, compare=False)
    """Usage is read from the chunk's ``usage`` only (OpenAI's way): decided once, per stream."""

    def __post_init__(self) -> None:
        self._usage_at_top = self.usage_paths == _USAGE_ONLY

    def add(self, chunk: Any) -> None:
        """Take one chunk. Raises :class:`StreamFailure` for a chunk carrying an ``error`` object (also
        one with a ``choices`` entry, as OpenRouter sends mid-stream) and :class:`WireFormatError` for
        a chunk that does not follow the format."""
        self.take([(None, chunk)])

    def take(self, events: Sequence[tuple[str | None, Any]]) -> list[str]:
        """Take the chunks of ``events`` (``(event, chunk)`` pairs, as :class:`~statek.wire.sse.SSEDecoder`
        gives them) in order, each as :meth:`add` does; the text pieces they add. Chunks of the common
        shape are read in one pass (:meth:`_take_plain`), any other the general way (:meth:`_add`)."""
        before = len(self.text)
        position = 0
        while position < len(events):
            position = self._take_plain(events, position)
            if position < len(events):
                self._add(events[position][1])
                position += 1
        return self.text[before:]

    def _take_plain(self, events: Sequence[tuple[str | None, Any]], start: int) -> int:
        """Take the chunks of ``events`` from ``start`` on while they have the common shape, as
        :meth:`_add` would, with type tests and dict lookups only; the position of the first chunk of
        another shape (nothing done with it), or ``len(events)``. Never raises.

        The common chunk (every chunk of a plain text answer): a dict without ``error``, its
        ``usage`` ``null`` or an object (read from there only: the stream's usage paths are
        OpenAI's), its ``choices`` empty or one choice of index 0 without ``message`` whose
        ``delta`` is an object without ``tool_calls``, its ``content`` ``null`` or text."""
        if not self._usage_at_top:
            return start
        text, keep_content = self.text, self.keep_content
        for position in range(start, len(events)):
            chunk = events[position][1]
            if type(chunk) is not dict:
                return position
            choices = chunk.get("choices")
            if type(choices) is not list:
                return position
            content = finish = None
            if len(choices) == 1:
                choice = choices[0]
                # An index equal to 0 (0.0 and false too) is one the model reads as 0.
                if type(choice) is not dict or "message" in choice or choice.get("index", 0) != 0:
                    return position
                delta = choice.get("delta")
                if type(delta) is not dict or "tool_calls" in delta:
                    return position
                content = delta.get("content")
                if type(content) is not str and content is not None:
                    return position
                finish = choice.get("finish_reason")
            elif choices:
                return position
            head = tuple(map(chunk.get, _HEAD_KEYS))
            if head != self._head and not self._read_head(head):
                return position
            if finish and type(finish) is str:  # anything else is no finish reason (a Label)
                self.finish_reason = finish
            if content and keep_content:
                text.append(content)
        return len(events)

    def _read_head(self, head: tuple[Any, ...]) -> bool:
        """Read a chunk's fields other than ``choices`` (``head``: its raw :data:`_HEAD_KEYS`) as
        :meth:`_add` does, when they are plain: no ``error``, ``usage`` ``null`` or an object. A chunk
        carrying the same ones again changes nothing, so :meth:`_take_plain` reads them only when
        they change. False, with nothing done, when they are not plain."""
        model, response_id, tier, usage, error = head
        if error is not None or (usage is not None and type(usage) is not dict):
            return False
        if usage is not None:
            self.usage = usage  # totals, not increments: the last one wins
        if head[:3] != self._head[:3]:  # not only usage came (the last chunk carries it)
            self.model = _label(model) or self.model  # Azure's first chunk has model ""
            self.response_id = self.response_id or text_id(response_id)
            self.service_tier = tier_label(tier) or self.service_tier
        self._head = head
        return True

    @guarded
    def _add(self, chunk: Any) -> None:
        """:meth:`add`, the general way: the chunk validated (its model when the plain type tests
        do not suffice), every choice and usage path read."""
        if not isinstance(chunk, Mapping):
            return
        if chunk.get("error"):
            raise StreamFailure(
                f"the stream reported an error: {clip(json.dumps(chunk['error'], default=str), 300)}"
            )
        choices: Any = chunk.get("choices") or ()
        if _plain_chat_body(chunk):  # most chunks: read as the model would, without it
            model = _label(chunk.get("model"))
            heads = [(choice.get("index", 0), _label(choice.get("finish_reason"))) for choice in choices]
        else:
            checked = validated(ChatBody, chunk, "stream chunk")
            model = checked.model
            heads = [(parsed.index, parsed.finish_reason) for parsed in checked.choices or ()]
        self.model = model or self.model  # Azure's first chunk has model ""
        self.response_id = self.response_id or text_id(chunk.get("id"))
        self.service_tier = tier_label(chunk.get("service_tier")) or self.service_tier
        self._head = _UNSEEN  # the next plain chunk reads its own
        for path in self.usage_paths:
            usage = dig(chunk, path)
            if isinstance(usage, Mapping):
                self.usage = usage  # totals, not increments: the last one wins
        for choice, (index, finish_reason) in zip(choices, heads):
            if index != 0:
                continue
            self.finish_reason = finish_reason or self.finish_reason
            delta = choice.get("delta")
            if not isinstance(delta, Mapping) or not self.keep_content:
                continue
            piece = message_text(delta.get("content"))
            if piece:
                self.text.append(piece)
            fragments = delta.get("tool_calls")
            for position, fragment in enumerate(fragments if isinstance(fragments, list) else ()):
                if isinstance(fragment, Mapping):
                    self._add_call_fragment(fragment, position)

    def _add_call_fragment(self, fragment: Mapping[str, Any], position: int) -> None:
        index = fragment.get("index", position)
        slot = self.calls.setdefault(index, {"id": None, "name": None, "arguments": None})
        slot["id"] = slot["id"] or fragment.get("id")
        function = fragment.get("function")
        if not isinstance(function, Mapping):
            return
        slot["name"] = slot["name"] or function.get("name")
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            slot["arguments"] = (slot["arguments"] if isinstance(slot["arguments"], str) else "") + arguments
        elif arguments is not None:
            slot["arguments"] = arguments  # Mistral may send the whole object at once

    def answer(self) -> ChatAnswer:
        """The answer the chunks so far add up to."""
        message: dict[str, Any] = {"content": "".join(self.text)}
        if self.calls:
            message["tool_calls"] = [
                {
                    "id": slot["id"],
                    "type": "function",
                    "function": {"name": slot["name"], "arguments": slot["arguments"]},
                }
                for _, slot in sorted(self.calls.items())
            ]
        return ChatAnswer(
            message, self.finish_reason, self.model, self.usage, self.response_id, self.service_tier
        )


def _carries_more_than_content(event: str | None, data: str) -> bool:
    """Whether a chunk may carry usage, a finish reason or an error (else only deltas: not parsed).

    Works on the raw JSON text: a quote inside a JSON string is escaped, so ``usage":`` there can only
    be a key. A ``null`` value does not count (with ``include_usage`` every chunk has ``"usage":null``).
    """
    for key in ('usage":', 'finish_reason":'):
        # One pass per key (an image or a hostile server can send one delta of many MiB).
        at = data.find(key)
        while at >= 0:
            at += len(key)
            if not (data.startswith("null", at) or data.startswith(" null", at)):
                return True
            at = data.find(key, at)
    return '"error"' in data


@guarded
def message_text(content: Any) -> str:
    """Message text: a string, or the text parts of a list of content parts (Mistral thinking chunks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, Mapping)
            and part.get("type", "text") == "text"
            and isinstance(part.get("text"), str)
        )
    return ""


@guarded
def tool_calls(calls: Any) -> list[CallParams] | None:
    """The tool calls of a message's ``tool_calls`` list; ``None`` when there are none.

    Raises :class:`ToolCallFormatError` for a list that is not one, or a call without a name or whose
    arguments are not a JSON object. A call without an id gets ``call_{position}``.
    """
    if not calls:
        return None
    if not isinstance(calls, list):
        raise ToolCallFormatError(f"tool_calls is not a list: {clip(repr(calls), 200)}")
    return [_tool_call(call, position) for position, call in enumerate(calls)]


def _tool_call(call: Any, position: int) -> CallParams:
    function = call.get("function") if isinstance(call, Mapping) else None
    name = function.get("name") if isinstance(function, Mapping) else None
    arguments = function.get("arguments") if isinstance(function, Mapping) else None
    kwargs: Any = arguments
    if isinstance(arguments, str):
        try:
            kwargs = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            kwargs = None
    elif arguments is None:
        kwargs = {}
    if not isinstance(name, str) or not name or not isinstance(kwargs, dict):
        raise ToolCallFormatError(
            f"tool call #{position} needs a name and JSON-object arguments, "
            f"got {clip(json.dumps(call, default=str), 300)}"
        )
    call_id = call.get("id") or f"call_{position}"
    return CallParams(call_id=str(call_id), name=name, args=[], kwargs=kwargs)


def read_whole(body: Any, profile: ChatCompletionsProfile, bytes_sent: int, bytes_received: int) -> Answer:
    """Text, tool calls and detail of a whole answer (the errors of :func:`read_answer` and
    :func:`tool_calls`)."""
    plain = _plain_whole(body, profile, bytes_sent, bytes_received)
    if plain is not None:
        return plain
    answer = read_answer(body)
    detail = answer_detail(answer, profile, bytes_sent, bytes_received)
    text = message_text(answer.message.get("content"))
    return Answer(text, tool_calls(answer.message.get("tool_calls")), detail)


_NO_USAGE = UsageCounts()


def _plain_whole(
    body: Any, profile: ChatCompletionsProfile, bytes_sent: int, bytes_received: int
) -> Answer | None:
    """What :func:`read_whole` reads from the common answer, read in one pass: a dict with one choice
    whose message has text (or ``null``) and no tool calls, a plain usage under a profile that reads
    it like OpenAI (see :func:`_openai_usage`) or none, no ``error``. ``None`` for any other shape:
    :func:`read_whole` then reads (and validates) it the general way. Never raises: every step is a
    type test or a dict lookup."""
    if type(body) is not dict or body.get("error"):
        return None
    choices = body.get("choices")
    if type(choices) is not list or len(choices) != 1:
        return None
    choice = choices[0]
    if type(choice) is not dict or choice.get("delta") is not None:
        return None
    index = choice.get("index")
    message = choice.get("message")
    if (index is not None and type(index) is not int) or type(message) is not dict:
        return None
    text = message.get("content")
    calls = message.get("tool_calls")
    if text is None:
        text = ""
    elif type(text) is not str:
        return None
    if calls is not None and (type(calls) is not list or calls):
        return None
    tier = body.get("service_tier")
    model = body.get("model")
    finish = choice.get("finish_reason")
    detail = _plain_detail(
        body.get("usage"),
        profile,
        None if tier is None else tier_label(tier),
        model if isinstance(model, str) and model else None,  # _label(model) or None
        finish if isinstance(finish, str) else None,  # _label(finish)
        text_id(body.get("id")),
        bytes_sent,
        bytes_received,
    )
    if detail is None:
        return None
    return _new_tuple(Answer, (text, None, detail))  # type: ignore[no-any-return]


class ChatStreamReader:
    """A :class:`~statek.wire.answer.StreamReader` for a chat-completions stream (see :class:`ChatStream`)."""

    __slots__ = ("_decoder", "_profile", "_stream")

    def __init__(
        self, profile: ChatCompletionsProfile = OPENAI_PROFILE, *, keep_content: bool = True
    ) -> None:
        self._decoder = SSEDecoder(None if keep_content else _carries_more_than_content)
        self._profile = profile
        self._stream = ChatStream(profile.stream_usage_paths, keep_content)

    @guarded
    def feed(self, data: bytes) -> list[str]:
        """The text generated in ``data``."""
        return self._stream.take(self._decoder.feed(data))

    @guarded
    def finish(self, bytes_sent: int, bytes_received: int) -> Answer:
        """The answer so far; ``has_usage`` False unless a chunk carried usage."""
        try:
            last = self._decoder.close()
            if last:
                self._stream.take(last)
        except ValueError:
            pass  # a cut-off last chunk: keep what was read before it
        plain = _plain_stream_answer(self._stream, self._profile, bytes_sent, bytes_received)
        if plain is not None:
            return plain
        answer = self._stream.answer()
        detail = answer_detail(answer, self._profile, bytes_sent, bytes_received)
        return Answer(
            message_text(answer.message.get("content")), tool_calls(answer.message.get("tool_calls")), detail
        )


def _plain_stream_answer(
    stream: ChatStream, profile: ChatCompletionsProfile, bytes_sent: int, bytes_received: int
) -> Answer | None:
    """What :meth:`ChatStreamReader.finish` reads from the common stream, without building the
    answer's message: no tool calls, and no usage or a plain one under a profile that reads it like
    OpenAI (see :func:`_openai_usage`). ``None`` for any other: read it the general way. Never raises."""
    if stream.calls:
        return None
    detail = _plain_detail(
        stream.usage,
        profile,
        stream.service_tier,
        stream.model,
        stream.finish_reason,
        stream.response_id,
        bytes_sent,
        bytes_received,
    )
    if detail is None:
        return None
    return _new_tuple(Answer, ("".join(stream.text), None, detail))  # type: ignore[no-any-return]


def _plain_detail(
    usage: Any,
    profile: ChatCompletionsProfile,
    tier: str | None,
    model: str | None,
    finish_reason: str | None,
    response_id: str | None,
    bytes_sent: int,
    bytes_received: int,
) -> CallDetail | None:
    """The :class:`CallDetail` of a plain answer (whole or streamed): no usage, or a plain one under
    a profile that reads it like OpenAI (:func:`_openai_counts`); ``None`` for any other usage, which
    the general reading then takes. ``tier``: the answer's service tier label, if it named one."""
    if usage is None:
        counts: OpenAICounts = _NO_COUNTS
    elif type(usage) is dict and profile.usage_like_openai:
        read = _openai_counts(usage)
        if read is None:
            return None
        counts = read
        if tier is None:
            # Perplexity bills a request by its search context size (low / medium / high): its tier
            context_size = usage.get("search_context_size")
            tier = None if context_size is None else tier_label(context_size)
    else:
        return None
    input_tokens, output_tokens, cached, cache_write, reasoning = counts
    # Built by position (what CallDetail(...) with these keywords builds, without its Python-level
    # __new__): no cost, no priced cost yet, no modality split, no one-hour writes or web searches,
    # all of which the fast usage reading declines. A test pins the order of the fields.
    return _new_tuple(  # type: ignore[no-any-return]
        CallDetail,
        (
            bytes_sent,
            bytes_received,
            None,  # cost
            input_tokens,
            output_tokens,
            cached,
            cache_write,
            0,  # cache_write_1h_tokens
            reasoning,
            model,
            finish_reason,
            None,  # priced_cost
            "unpriced",  # cost_status
            usage is not None,  # has_usage
            response_id,
            tier,
            0,  # input_audio_tokens
            0,  # cached_audio_tokens
            0,  # output_audio_tokens
            0,  # input_image_tokens
            0,  # output_image_tokens
            None,  # explained_cost
            0,  # web_search_requests
        ),
    )


_NO_COUNTS: OpenAICounts = (0, 0, 0, 0, 0)
_new_tuple: Callable[..., Any] = tuple.__new__
"""Builds a named tuple from a tuple of all its fields, without its Python-level ``__new__``."""
