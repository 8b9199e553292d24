"""Recognising an LLM request by its path and body, and reading its answer with the right codec.

:func:`recognise` looks at a POST's path (cheap, done for every request) and only then at its JSON
body. Recognised endpoints (any prefix before them, so proxies and gateways work too):

=============================================  ==================  ============
path ends with                                 format              operation
=============================================  ==================  ============
``/chat/completions``                          ``openai_chat``     ``chat``
``/responses``                                 ``openai_responses`` ``chat``
``/embeddings``                                ``openai_embeddings`` ``embeddings``
``/messages``                                  ``anthropic``       ``chat``
``models/{m}:generateContent`` / ``:streamGenerateContent``  ``gemini``  ``chat``
``models/{m}:embedContent`` / ``:batchEmbedContents``  ``gemini_embeddings`` ``embeddings``
``models/{m}:predict`` (``m`` an embedding model)
=============================================  ==================  ============

Everything else (model lists, files, batches, token counting, ...) is not a metered call.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple
from urllib.parse import unquote

from . import anthropic_messages, embeddings, gemini, openai_chat, openai_responses
from .answer import Answer, StreamReader
from .json_text import parse_json
from .openai_chat import OPENAI_PROFILE, ChatCompletionsProfile

__all__ = ["WireFormat", "WireRequest", "read_answer", "recognise", "stream_reader"]

WireFormat = Literal[
    "openai_chat", "openai_responses", "openai_embeddings", "anthropic", "gemini", "gemini_embeddings"
]

_GEMINI_CHAT = {"generateContent": False, "streamGenerateContent": True}
_GEMINI_EMBED = frozenset({"embedContent", "batchEmbedContents", "predict"})


class WireRequest(NamedTuple):
    """A recognised LLM request: its format, operation, model and whether it asked for a stream.

    ``include_usage`` is, for a chat-completions stream, whether ``stream_options.include_usage``
    was sent (such a stream carries no usage otherwise); ``None`` for every other request.
    ``shaped`` is whether the body is a JSON object with the fields of its format (a chat request's
    ``messages``, a Gemini request's ``contents``, ...): what tells an LLM call to an unknown host from
    another API that happens to have such a path.
    """

    format: WireFormat
    operation: Literal["chat", "embeddings"]
    model: str | None
    stream: bool
    include_usage: bool | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    shaped: bool = True


_SHAPES: dict[str, tuple[str, ...]] = {
    "openai_chat": ("messages",),
    "openai_responses": ("input",),
    "openai_embeddings": ("input",),
    "anthropic": ("messages", "max_tokens"),
    "gemini": ("contents",),
}
"""The fields a body of each format always has (besides ``model``, which Gemini puts in the path)."""


def _shaped(wire_format: str, fields: dict[str, Any], model: str | None) -> bool:
    if model is None:
        return False
    if wire_format == "gemini_embeddings":
        return any(key in fields for key in ("content", "requests", "instances"))
    for key in _SHAPES[wire_format]:  # a loop, not all(genexpr): this runs for every request
        if key not in fields:
            return False
    return True


def _path_format(path: str) -> tuple[WireFormat, str | None] | None:
    """The format a path names and, for Gemini, the model in the path; ``None``: not an LLM call.

    Matched without regard to case or trailing slashes (servers and gateways accept
    ``/V1/Chat/Completions/``: a metering that did not would miss calls that were billed); the
    Gemini model keeps its case."""
    found = _exact_path_format(path)
    if found is None and (path.endswith("/") or not path.islower()):
        found = _exact_path_format(_folded(path))
    return found


_GEMINI_VERBS = {verb.lower(): verb for verb in (*_GEMINI_CHAT, *_GEMINI_EMBED)}


def _folded(path: str) -> str:
    """``path`` without trailing slashes, in lower case but for a Gemini model, with Gemini's verb
    spelled as Gemini does."""
    path = path.rstrip("/")
    head, colon, verb = path.rpartition(":")
    canonical = _GEMINI_VERBS.get(verb.lower()) if colon else None
    if canonical is not None:
        at = head.lower().rfind("/models/")
        if at >= 0:
            return f"{head[:at].lower()}/models/{head[at + 8 :]}:{canonical}"
    return path.lower()


def _exact_path_format(path: str) -> tuple[WireFormat, str | None] | None:
    if path.endswith("/chat/completions"):
        return "openai_chat", None
    if path.endswith("/responses"):
        return "openai_responses", None
    if path.endswith("/embeddings"):
        return "openai_embeddings", None
    if path.endswith("/messages") and "/threads/" not in path:  # not OpenAI's Assistants threads
        return "anthropic", None
    head, colon, verb = path.rpartition(":")
    if colon and "/models/" in head:
        model = unquote(head.rpartition("/models/")[2])
        if verb in _GEMINI_CHAT:
            return "gemini", model
        if verb in _GEMINI_EMBED and (verb != "predict" or "embedding" in model):
            return "gemini_embeddings", model
    return None


def recognise(method: str, path: str, body: bytes) -> WireRequest | None:
    """The LLM request a POST to ``path`` with ``body`` is, or ``None`` when it is none.

    Never raises: a body that is not JSON still gives a request (model ``None``) when the path matches.
    """
    if method != "POST":
        return None
    found = _path_format(path)
    if found is None:
        return None
    wire_format, path_model = found
    try:
        fields: Any = parse_json(body) if body else {}
    except ValueError:
        fields = {}
    if not isinstance(fields, dict):
        fields = {}
    model = path_model or fields.get("model")
    model = model if isinstance(model, str) and model else None
    shaped = _shaped(wire_format, fields, model)
    if wire_format == "gemini":
        stream = path.rstrip("/").lower().endswith(":streamgeneratecontent")
        return WireRequest("gemini", "chat", model, stream, shaped=shaped)
    if wire_format in ("openai_embeddings", "gemini_embeddings"):
        return WireRequest(wire_format, "embeddings", model, False, shaped=shaped)
    stream = fields.get("stream") is True
    include_usage = None
    if wire_format == "openai_chat" and stream:
        options = fields.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
    temperature = fields.get("temperature")
    max_tokens = fields.get(
        "max_tokens", fields.get("max_completion_tokens", fields.get("max_output_tokens"))
    )
    return WireRequest(
        wire_format,
        "chat",
        model,
        stream,
        include_usage,
        float(temperature)
        if isinstance(temperature, (int, float)) and not isinstance(temperature, bool)
        else None,
        max_tokens if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) else None,
        shaped,
    )


def stream_reader(
    request: WireRequest, profile: ChatCompletionsProfile = OPENAI_PROFILE, *, keep_content: bool = True
) -> StreamReader:
    """A fresh incremental reader for the stream answering ``request``. With ``keep_content=False``
    it holds only usage, model and finish reason (memory flat in the stream's length); pieces of
    text are still returned by ``feed``."""
    if request.format == "anthropic":
        return anthropic_messages.MessageStreamReader(keep_content=keep_content)
    if request.format == "gemini":
        return gemini.ContentStreamReader(keep_content=keep_content)
    if request.format == "openai_responses":
        return openai_responses.ResponsesStreamReader(keep_content=keep_content)
    return openai_chat.ChatStreamReader(profile, keep_content=keep_content)


def read_answer(
    request: WireRequest,
    body: bytes,
    bytes_sent: int,
    bytes_received: int,
    profile: ChatCompletionsProfile = OPENAI_PROFILE,
) -> Answer:
    """The whole (non-streamed) answer to ``request``. Raises ``ValueError`` (a
    :class:`~statek.wire.errors.WireFormatError` or a JSON error) for a body its codec cannot read."""
    parsed = parse_json(body)
    if request.format == "openai_chat":
        return openai_chat.read_whole(parsed, profile, bytes_sent, bytes_received)
    if request.format == "openai_responses":
        return openai_responses.read_response(parsed, bytes_sent, bytes_received)
    if request.format == "openai_embeddings":
        return embeddings.read_openai(parsed, bytes_sent, bytes_received)
    if request.format == "anthropic":
        return Answer(*anthropic_messages.read_message(parsed, bytes_sent, bytes_received))
    if request.format == "gemini":
        return gemini.read_whole(parsed, bytes_sent, bytes_received)
    return embeddings.read_gemini(parsed, bytes_sent, bytes_received)
