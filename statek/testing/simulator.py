"""``ProviderSimulator``: the public face of the simulator (server, URLs, transport, record)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote

from .behavior import ModelBehavior
from .engine import SimulatorEngine
from .exchange import RecordedRequest
from .server import LoopbackServer
from .transport import SimulatorTransport

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["ProviderSimulator"]


class ProviderSimulator:
    """A fake LLM provider on 127.0.0.1 speaking OpenAI (chat, Responses, embeddings), Anthropic and
    Gemini/Vertex wire formats.

    ``behaviors`` maps model names to :class:`~statek.testing.ModelBehavior`; ``default`` answers other
    models. With neither, every model gets ``ModelBehavior()``; with ``behaviors`` and no ``default``,
    an unknown model gets a 404. ``seed`` makes every random choice (latency ranges, probabilistic
    failures, ids) repeatable. ``port=0`` picks a free port. ``max_recorded`` bounds :attr:`requests`
    for long benchmarks (the oldest are dropped). ``index_by="content"`` makes every answer depend on
    the request's content rather than its arrival order, so concurrent callers get the same answers
    whatever the interleaving (see :class:`~statek.testing.engine.SimulatorEngine`).

    Use it as a context manager (``with`` or ``async with``), or call :meth:`start` / :meth:`stop`.
    :meth:`transport` works without starting the server. Routes (POST, JSON bodies):

    * ``…/chat/completions`` (any prefix, e.g. ``/v1``, ``/api/v1``, Azure
      ``/openai/deployments/{model}/chat/completions``): OpenAI chat completions;
    * ``…/responses``: the OpenAI Responses API (whole or as its event stream);
    * ``…/embeddings``: OpenAI-compatible embeddings (``encoding_format`` float or base64);
    * ``…/messages`` (normally ``/v1/messages``): Anthropic Messages;
    * ``/v1beta/models/{model}:generateContent`` and ``:streamGenerateContent[?alt=sse]``: Gemini API;
      ``/v1/projects/{p}/locations/{l}/publishers/google/models/{model}:…``: Vertex AI;
      ``…:embedContent`` and ``…:batchEmbedContents``: Gemini embeddings.
    """

    def __init__(
        self,
        behaviors: Mapping[str, ModelBehavior] | None = None,
        default: ModelBehavior | None = None,
        *,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        max_recorded: int | None = None,
        index_by: Literal["arrival", "content"] = "arrival",
    ) -> None:
        self.engine = SimulatorEngine(
            behaviors, default, seed=seed, max_recorded=max_recorded, index_by=index_by
        )
        self._server = LoopbackServer(self.engine, host, port)

    def __repr__(self) -> str:
        where = self.base_url if self.running else "not running"
        return f"ProviderSimulator({where}, requests={self.engine.request_count})"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Self:
        """Start the loopback server (a daemon thread); returns once it accepts connections."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop the server, close its connections and join its thread. Safe to call twice."""
        self._server.stop()

    @property
    def running(self) -> bool:
        """Whether the loopback server is serving."""
        return self._server.running

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    # ------------------------------------------------------------------ addresses
    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash). Raises ``RuntimeError`` before :meth:`start`."""
        if not self.running:
            raise RuntimeError(
                "the simulator is not running: use `with ProviderSimulator() as sim:` or sim.start()"
            )
        return f"http://{self._server.host}:{self._server.port}"

    @property
    def status_counts(self) -> Counter[int | None]:
        """Answers per HTTP status (``None``: connection dropped), whatever ``max_recorded`` keeps."""
        return self.engine.status_counts

    @property
    def connections_accepted(self) -> int:
        """TCP connections the server accepted since :meth:`start` (keep-alive makes it small)."""
        return self._server.connections_accepted

    @property
    def port(self) -> int:
        """The port the server listens on (after :meth:`start`)."""
        return self._server.port

    @property
    def openai_url(self) -> str:
        """Full chat-completions URL, ``{base_url}/v1/chat/completions`` (statek's ``api_url``)."""
        return f"{self.base_url}/v1/chat/completions"

    @property
    def openai_base_url(self) -> str:
        """``{base_url}/v1``: the ``base_url`` an OpenAI SDK client expects."""
        return f"{self.base_url}/v1"

    @property
    def anthropic_url(self) -> str:
        """Full Messages URL, ``{base_url}/v1/messages``."""
        return f"{self.base_url}/v1/messages"

    @property
    def gemini_url(self) -> str:
        """``{base_url}/v1beta/models/{model}:generateContent`` with a literal ``{model}`` to fill in."""
        return f"{self.base_url}/v1beta/models/{{model}}:generateContent"

    def gemini_model_url(self, model: str = "{model}", *, stream: bool = False) -> str:
        """The Gemini API URL for ``model``; ``stream=True`` gives ``:streamGenerateContent?alt=sse``.

        Without ``model`` the URL keeps a literal ``{model}`` placeholder, like :attr:`gemini_url`.
        """
        verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"{self.base_url}/v1beta/models/{quote(model, safe='{}')}:{verb}"

    def vertex_url(
        self,
        model: str = "{model}",
        *,
        project: str = "sim-project",
        location: str = "us-central1",
        stream: bool = False,
    ) -> str:
        """A Vertex AI URL: ``{base_url}/v1/projects/{p}/locations/{l}/publishers/google/models/{model}:…``.

        Without ``model`` the URL keeps a literal ``{model}`` placeholder.
        """
        verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return (
            f"{self.base_url}/v1/projects/{project}/locations/{location}/publishers/google/models/"
            f"{quote(model, safe='{}')}:{verb}"
        )

    # ------------------------------------------------------------------ in-process use and the record
    def transport(self) -> SimulatorTransport:
        """An ``httpx.AsyncBaseTransport`` answering exactly like the server, in-process (no sockets).

        Use any base URL with it, e.g. ``httpx.AsyncClient(transport=sim.transport(),
        base_url="http://sim")``; only the path and query matter.
        """
        return SimulatorTransport(self.engine)

    def set_behavior(self, model: str, behavior: ModelBehavior | None) -> None:
        """Change how ``model`` answers from now on (``None``: fall back to the default behaviour)."""
        self.engine.set_behavior(model, behavior)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received (server and transports alike), oldest first, with what was answered."""
        return self.engine.requests

    @property
    def request_count(self) -> int:
        """How many requests arrived since the start or the last :meth:`reset`."""
        return self.engine.request_count

    def requests_for(self, model: str) -> list[RecordedRequest]:
        """The recorded requests for ``model``."""
        return [r for r in self.engine.requests if r.model == model]

    def reset(self) -> None:
        """Clear the record and restart per-model request counting (failure plans and ids start over)."""
        self.engine.reset()
