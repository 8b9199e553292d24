"""The simulator's core: route a request to a wire format and a behaviour, answer it, record it.

Transport-agnostic and thread-safe: the loopback server (its own thread) and any number of in-process
transports (the callers' event loops) share one engine, its counters and its record.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import threading
from collections import Counter, OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote

from . import anthropic_wire, embeddings_wire, gemini_wire, openai_wire, responses_wire
from ._wire import WireFormat
from .behavior import Fault, ModelBehavior, plan_reply
from .exchange import RecordedRequest, SimRequest, SimResponse, Wire

__all__ = ["SimulatorEngine"]

_log = logging.getLogger(__name__)
_REPEATS_KEPT = 100_000  # bodies whose repeat count index_by="content" remembers (a bound on memory)

_WIRES: dict[Wire, WireFormat] = {
    "openai": openai_wire.WIRE,
    "anthropic": anthropic_wire.WIRE,
    "gemini": gemini_wire.WIRE,
    "openai_responses": responses_wire.WIRE,
    "openai_embeddings": embeddings_wire.OPENAI,
    "gemini_embeddings": embeddings_wire.GEMINI,
}

# Gemini API (/v1beta/models/M:verb) and Vertex AI (/v1/projects/P/locations/L/publishers/google/models/M:verb).
_GEMINI_PATH = re.compile(
    r"^/(?:v1|v1beta|v1beta1|v1alpha)/(?:projects/[^/]+/locations/[^/]+/publishers/google/)?"
    r"models/([^/:]+):(generateContent|streamGenerateContent|embedContent|batchEmbedContents)$"
)
_AZURE_DEPLOYMENT = re.compile(r"/deployments/([^/]+)/chat/completions$")


@dataclass(frozen=True, slots=True)
class _Route:
    wire: Wire
    model: str | None
    stream: bool | None


def _route(path: str) -> _Route | None:
    """Which wire format serves ``path``; the model and streaming flag when the URL names them."""
    gemini = _GEMINI_PATH.match(path)
    if gemini:
        if gemini[2] in ("embedContent", "batchEmbedContents"):
            return _Route("gemini_embeddings", unquote(gemini[1]), False)
        return _Route("gemini", unquote(gemini[1]), gemini[2] == "streamGenerateContent")
    if path.endswith("/responses"):
        return _Route("openai_responses", None, None)
    if path.endswith("/embeddings"):
        return _Route("openai_embeddings", None, False)
    if path.endswith("/chat/completions"):
        azure = _AZURE_DEPLOYMENT.search(path)
        return _Route("openai", unquote(azure[1]) if azure else None, None)
    if path.endswith("/messages"):
        return _Route("anthropic", None, None)
    return None


def _parse_json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


class SimulatorEngine:
    """Answers requests from per-model behaviours and records every exchange.

    ``behaviors`` maps model names to behaviours; ``default`` answers any other model. Without either,
    every model gets ``ModelBehavior()``; with ``behaviors`` but no ``default``, unknown models get a
    404 in the wire format's error shape. ``max_recorded`` bounds the record (oldest dropped).

    ``index_by``: ``"arrival"`` (default) numbers each model's requests 0, 1, 2, ... as they arrive;
    ``"content"`` derives the number from the request itself (model, body, and how many times that
    exact body came before, so a retry differs from its original), making every answer, failure and
    random choice independent of the order concurrent requests arrive in. In that mode ``every=k``
    hits about one request in ``k``, by content, and ``first`` / ``on`` are meaningless.
    """

    def __init__(
        self,
        behaviors: Mapping[str, ModelBehavior] | None = None,
        default: ModelBehavior | None = None,
        *,
        seed: int = 0,
        max_recorded: int | None = None,
        index_by: Literal["arrival", "content"] = "arrival",
    ) -> None:
        if index_by not in ("arrival", "content"):
            raise ValueError(f"index_by must be 'arrival' or 'content', not {index_by!r}")
        self.index_by = index_by
        self._repeats: OrderedDict[bytes, int] = OrderedDict()
        self._behaviors = dict(behaviors or {})
        self.default = default if default is not None or behaviors else ModelBehavior()
        self.seed = seed
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._sequence = 0
        self._statuses: Counter[int | None] = Counter()
        self._records: deque[RecordedRequest] = deque(maxlen=max_recorded)

    # ------------------------------------------------------------------ configuration and record
    def set_behavior(self, model: str, behavior: ModelBehavior | None) -> None:
        """Give ``model`` a new behaviour (``None``: fall back to the default)."""
        with self._lock:
            if behavior is None:
                self._behaviors.pop(model, None)
            else:
                self._behaviors[model] = behavior

    def behavior_for(self, model: str | None) -> ModelBehavior | None:
        """The behaviour answering ``model``, ``None`` when the simulator does not serve it."""
        with self._lock:
            found = self._behaviors.get(model) if model is not None else None
        return found if found is not None else self.default

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the record, oldest first."""
        with self._lock:
            return list(self._records)

    @property
    def request_count(self) -> int:
        """Requests received since the start or the last :meth:`reset` (including ones dropped from the record)."""
        with self._lock:
            return self._sequence

    @property
    def status_counts(self) -> Counter[int | None]:
        """How many answers had each HTTP status (``None``: connection dropped) since the start or the
        last :meth:`reset`; kept whatever ``max_recorded`` is (a long run can record nothing)."""
        with self._lock:
            return Counter(self._statuses)

    def reset(self) -> None:
        """Forget the record and restart every per-model request index (so failure plans start over)."""
        with self._lock:
            self._records.clear()
            self._counts.clear()
            self._statuses.clear()
            self._sequence = 0

    # ------------------------------------------------------------------ answering
    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> SimResponse:
        """Answer one request. ``target`` is the path with its query string; header names lower-case."""
        path, _, raw_query = target.partition("?")
        route = _route(path)
        parsed = _parse_json(body)
        fields = parsed if isinstance(parsed, dict) else {}
        model = route.model if route and route.model else fields.get("model")
        model = model if isinstance(model, str) else None
        stream = route.stream if route and route.stream is not None else fields.get("stream") is True
        with self._lock:
            key = model or ""
            index = self._counts.get(key, 0)
            self._counts[key] = index + 1
            sequence = self._sequence
            self._sequence += 1
            if self.index_by == "content":
                index = self._content_index(key, body)
        request = SimRequest(
            method=method,
            path=path,
            query=dict(parse_qsl(raw_query)),
            headers=headers,
            body=parsed,
            body_bytes=len(body),
            wire=route.wire if route else None,
            model=model,
            stream=stream,
            index=index,
            sequence=sequence,
        )
        response, failure = self._answer(request, route, body)
        record = RecordedRequest(
            **{name: getattr(request, name) for name in SimRequest.__dataclass_fields__},
            status=None if response.disconnect else response.status,
            outcome=(
                "disconnect"
                if response.disconnect
                else "malformed"
                if failure is not None and failure.kind == "malformed"
                else "ok"
                if response.status < 400
                else "error"
            ),
            usage=response.usage,
            wire_usage=response.wire_usage,
            response_bytes=response.size,
            latency=response.latency,
            failure=failure,
        )
        with self._lock:
            self._records.append(record)
            self._statuses[record.status] += 1
        return response

    def _content_index(self, model: str, body: bytes) -> int:
        """A stable number for (model, body, repeat); called under the lock. The repeat counts are an
        LRU of :data:`_REPEATS_KEPT` bodies: a retry follows its original within seconds."""
        digest = hashlib.blake2b(model.encode() + b"\0" + body, digest_size=16).digest()
        repeat = self._repeats.pop(digest, -1) + 1
        self._repeats[digest] = repeat
        if len(self._repeats) > _REPEATS_KEPT:
            self._repeats.popitem(last=False)
        mixed = hashlib.blake2b(digest + repeat.to_bytes(4, "little"), digest_size=6).digest()
        return int.from_bytes(mixed, "little")

    def _answer(self, request: SimRequest, route: _Route | None, raw: bytes) -> tuple[SimResponse, Any]:
        if route is None:
            return openai_wire.WIRE.error(404, f"no simulated endpoint at {request.path}"), None
        wire = _WIRES[route.wire]
        if request.method != "POST":
            return wire.error(405, f"{request.method} is not supported here; POST a JSON body"), None
        if not isinstance(request.body, dict):
            return wire.error(400, f"the request body is not a JSON object: {raw[:80]!r}"), None
        if request.model is None:
            return wire.error(400, "the request names no model"), None
        behavior = self.behavior_for(request.model)
        if behavior is None:
            return wire.error(404, f"model {request.model!r} is not simulated here"), None
        rng = random.Random(f"{self.seed}:{request.model}:{request.index}")
        try:
            plan = plan_reply(behavior, request, rng)
            if isinstance(plan, Fault):
                return wire.render_fault(plan, request), plan.failure
            return wire.render_reply(plan, request), None
        except Exception as exc:  # noqa: BLE001 - a user's text=/usage= callable failed: answer 500, say why
            _log.exception("statek simulator: behaviour for %r failed", request.model)
            return wire.error(500, f"simulated model behaviour raised {type(exc).__name__}: {exc}"), None
