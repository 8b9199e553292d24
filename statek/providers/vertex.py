"""``VertexAI_API``: Google's ``generateContent`` wire format, on the Gemini API or on Vertex AI.

Where requests go, in order:

1. a configured ``api_url`` other than the Gemini default: used as it is when it holds ``{model}`` or
   ends with ``:generateContent`` (``{model}``, ``{project}``, ``{location}`` and ``{publisher}`` in it
   are filled in); otherwise, as in the original STATEK, it is a **base URL**: one ending in ``/models``
   (the Gemini API's ``https://generativelanguage.googleapis.com/v1beta/models``) gets
   ``/{model}:generateContent``, any other
   ``/projects/{project}/locations/{location}/publishers/{publisher}/models/{model}:generateContent``
   (without a project the provider still constructs; each request then raises a ``ConfigurationError``
   naming ``VERTEXAI_PROJECT`` before anything is sent);
2. with a project (``project=`` or ``VERTEXAI_PROJECT``), the Vertex model resource
   ``https://{location}-aiplatform.googleapis.com/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent``
   (host ``aiplatform.googleapis.com`` for location ``global``, the default);
3. else the Gemini API, ``https://generativelanguage.googleapis.com/v1beta/models/{model}:generateContent``.

Auth follows the mode: Vertex (a project, an ``aiplatform.googleapis.com`` host, or ``vertexai=True``)
sends ``Authorization: Bearer <api_key>`` (an OAuth access token) and reports
``gen_ai.provider.name = gcp.vertex_ai``; the Gemini API sends ``x-goog-api-key`` and reports ``gcp.gemini``.
``auth="api_key"`` (the original's keyword) sends ``x-goog-api-key`` in either mode (Vertex express mode).
``generation_config`` (the original's keyword) is merged into every request's ``generationConfig``;
the request's own settings (temperature, max tokens, reasoning, response schema) win.

Request: roles ``user`` / ``model``, consecutive turns of one role merged; tool calls as
``functionCall`` parts (with their ``thoughtSignature``, which Gemini 3 requires back), tool results
as ``functionResponse`` parts ``{"output": result}``; tool schemas cut down to Gemini's OpenAPI subset
(:func:`gemini_schema`); reasoning as ``thinkingConfig`` (budget from ``REASONING_BUDGET_TOKENS``, else
``REASONING_EFFORT``, else ``-1``: dynamic; thought summaries are not requested, statek returns answer
text only); ``response_format_file`` as ``responseMimeType`` + ``responseSchema``.

Answers, streams (``stream=True``, ``:streamGenerateContent?alt=sse``) and usage are read by the codec
:mod:`statek.wire.gemini`, which the httpx transport shares.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from .._http import RawResponse, RetryPolicy
from ..chat import ChatHistoryItem, ChatRole, ChatStyle, ToolSpec
from ..exceptions import ConfigurationError, MalformedToolCallError, ProviderError, ResponseFormatError
from ..llm_api import LLM_API, PreparedRequest
from ..secrets import scrub
from ..settings import VERTEXAI_LOCATION_ENV, VERTEXAI_PROJECT_ENV, ProviderSettings, env_names, environment
from ..streaming import stream_answer
from ..types import CallParams, LLM_Response
from ..wire.errors import ToolCallFormatError, WireFormatError
from ..wire.gemini import ContentStreamReader, GeminiToolCall, fold_stream, read_response, stream_error
from ..wire.sse import iter_sse_json
from ._errors import error_context
from ._google_schema import gemini_schema
from ._response_format import load_response_schema

__all__ = ["GEMINI_API_URL", "GeminiToolCall", "VertexAI_API", "gemini_schema", "vertex_url"]

GEMINI_API_URL = "https://generativelanguage.googleapis.com/v1beta/models/{model}:generateContent"
"""The Gemini API endpoint template (the provider's default URL)."""
DEFAULT_LOCATION = "global"
DYNAMIC_THINKING = -1
"""``thinkingBudget`` that lets the model decide how much to think."""
EFFORT_BUDGETS: Mapping[str, int] = {"low": 1024, "medium": 8192, "high": 24576}

DEFAULT_PUBLISHER = "google"
_MODEL_PATH = "/projects/{project}/locations/{location}/publishers/{publisher}/models/{model}:generateContent"


def vertex_url(project: str, location: str, publisher: str = DEFAULT_PUBLISHER) -> str:
    """The Vertex AI ``generateContent`` URL template (``{model}`` left in) for a project and location."""
    host = "aiplatform.googleapis.com" if location == "global" else f"{location}-aiplatform.googleapis.com"
    return f"https://{host}/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/{{model}}:generateContent"


class VertexAI_API(LLM_API):
    """Gemini ``generateContent`` on the Gemini API or Vertex AI. See the module docstring.

    Extra constructor arguments: ``project`` / ``location`` / ``publisher`` (Vertex; default from
    ``VERTEXAI_PROJECT`` / ``VERTEXAI_LOCATION``, publisher ``google``), ``vertexai`` (force the auth
    mode; default: inferred), ``auth="api_key"`` (send the key as ``x-goog-api-key`` in any mode),
    ``generation_config`` (defaults merged into every ``generationConfig``) and ``stream``.
    """

    provider_key = "VERTEXAI"
    genai_provider_name: ClassVar[str] = "gcp.gemini"
    output_cap_wire: ClassVar[str | None] = "gemini"
    pricing_provider: ClassVar[str | None] = "GEMINI"
    price_provider: ClassVar[str | None] = "google"
    default_api_url: ClassVar[str | None] = GEMINI_API_URL
    requires_api_key: ClassVar[bool] = True

    def __init__(
        self,
        settings: ProviderSettings | None = None,
        *,
        model: str | None = None,
        provider_key: str | None = None,
        http_client: httpx.AsyncClient | None = None,
        timeout: httpx.Timeout | float = 60.0,
        retry: RetryPolicy | None = None,
        project: str | None = None,
        location: str | None = None,
        publisher: str = DEFAULT_PUBLISHER,
        vertexai: bool | None = None,
        auth: str | None = None,
        generation_config: Mapping[str, Any] | None = None,
        stream: bool = False,
    ) -> None:
        super().__init__(
            settings,
            model=model,
            provider_key=provider_key,
            http_client=http_client,
            timeout=timeout,
            retry=retry,
        )
        self.stream = stream
        self.project = project or environment().get(VERTEXAI_PROJECT_ENV) or None
        self.location = location or environment().get(VERTEXAI_LOCATION_ENV) or DEFAULT_LOCATION
        self.publisher = publisher
        if auth not in (None, "api_key", "bearer"):
            raise ConfigurationError(f"VertexAI_API auth must be 'api_key' or 'bearer', not {auth!r}")
        self.auth = auth
        self.generation_config = dict(generation_config or {})
        self._url_template = self._resolve_url(vertexai)
        host = urlsplit(self._url_template).hostname or ""
        self.vertexai = (
            vertexai
            if vertexai is not None
            else bool(self.project) or host.endswith("aiplatform.googleapis.com")
        )
        # Per instance: the same class serves the Gemini API and Vertex AI.
        self.genai_provider_name = "gcp.vertex_ai" if self.vertexai else "gcp.gemini"  # type: ignore[misc]
        # Vertex AI bills some models at other prices than the Gemini API: its own price rows
        # (provider "vertex"), else the database's Google prices.
        self.pricing_provider = "VERTEX" if self.vertexai else "GEMINI"  # type: ignore[misc]
        path = self.settings.response_format_file
        env = env_names(self.provider_key)["response_format_file"]
        self._response_schema = gemini_schema(load_response_schema(path, env)) if path else None

    def _resolve_url(self, vertexai: bool | None) -> str:
        configured = self.settings.api_url
        if configured and configured != GEMINI_API_URL:
            template = configured
            if "{model}" not in template and not template.endswith(":generateContent"):
                base = template.rstrip("/")
                # A Gemini API base (".../v1beta/models") takes the model next, as the original sent it.
                template = base + ("/{model}:generateContent" if base.endswith("/models") else _MODEL_PATH)
        elif self.project:
            template = vertex_url(self.project, self.location, self.publisher)
        else:
            template = "{project}" if vertexai else GEMINI_API_URL
        if self.project:
            template = template.replace("{project}", self.project)
        # Without a project, a template that needs one constructs (as in the original) and each
        # request raises the ConfigurationError of _endpoint, before anything is sent.
        return template.replace("{location}", self.location).replace("{publisher}", self.publisher)

    def __repr__(self) -> str:
        url = getattr(self, "_url_template", None)
        return scrub(
            f"{type(self).__name__}(provider={self.provider_key!r}, url={url!r}, model={self.model!r})"
        )

    @property
    def api_url(self) -> str:
        """The endpoint template requests go to; ``{model}`` is filled in per request."""
        return self._url_template

    def server_address(self) -> tuple[str | None, int | None]:
        parts = urlsplit(self._url_template)
        return parts.hostname, parts.port or {"https": 443, "http": 80}.get(parts.scheme)

    def _endpoint(self, model: str, stream: bool | None = None) -> tuple[str, dict[str, str] | None]:
        if "{project}" in self._url_template:
            raise ConfigurationError(
                f"Vertex AI needs a project: set {VERTEXAI_PROJECT_ENV} (and {VERTEXAI_LOCATION_ENV}) or pass "
                f"project=..., or set {env_names(self.provider_key)['api_url']} to the full endpoint URL "
                "(a Gemini API base URL ending in /models needs no project)"
            )
        url = self._url_template.replace("{model}", model.removeprefix("models/"))
        if not (self.stream if stream is None else stream):
            return url, None
        if ":generateContent" not in url:
            raise ConfigurationError(
                f"streaming needs a ...:generateContent URL to derive ...:streamGenerateContent from, got {url!r}"
            )
        return url.replace(":generateContent", ":streamGenerateContent"), {"alt": "sse"}

    def _request_headers(self) -> dict[str, str]:
        key = self.settings.key_value()
        if not key:
            raise ConfigurationError(
                f"no credential for provider {self.provider_key}: set {env_names(self.provider_key)['api_key']} "
                f"to a Gemini API key, or (with {VERTEXAI_PROJECT_ENV}) to an OAuth access token such as "
                "the output of `gcloud auth print-access-token`"
            )
        bearer = self.auth == "bearer" or (self.vertexai and self.auth != "api_key")
        auth = {"authorization": f"Bearer {key}"} if bearer else {"x-goog-api-key": key}
        return {"content-type": "application/json", **auth}

    # ----------------------------------------------------------------- request
    def _build_payload(self, params: PreparedRequest) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "contents": _contents(params.chat_history, params.chat_style, send_ids=not self.vertexai)
        }
        system = "\n\n".join(
            [params.system_prompt or ""]
            + [i.content for i in params.chat_history if i.role is ChatRole.SYSTEM]
        ).strip()
        if system:
            payload["systemInstruction"] = {"parts": [{"text": system}]}
        if params.tools:
            payload["tools"] = [{"functionDeclarations": [_declaration(t) for t in params.tools]}]
        config: dict[str, Any] = copy.deepcopy(self.generation_config)
        if params.temperature is not None:
            config["temperature"] = params.temperature
        if params.max_tokens is not None:
            config["maxOutputTokens"] = params.max_tokens
        if params.enable_reasoning:
            budget = params.reasoning_budget_tokens or EFFORT_BUDGETS.get(params.reasoning_effort or "")
            config["thinkingConfig"] = {
                "thinkingBudget": budget or DYNAMIC_THINKING,
                "includeThoughts": False,
            }
        if self._response_schema is not None:
            config["responseMimeType"] = "application/json"
            config["responseSchema"] = copy.deepcopy(self._response_schema)
        if config:
            payload["generationConfig"] = config
        return payload

    # ----------------------------------------------------------------- response
    async def _send(self, params: PreparedRequest, payload: dict[str, Any]) -> LLM_Response:
        url, query = self._endpoint(params.model)
        headers = self._request_headers()
        if not self.stream:
            body, raw = await self._post_json(payload, url=url, headers=headers, params=query)
            return self._parse_response(body, raw)
        raw = await self._post_raw(payload, url=url, headers=headers, params=query)
        try:
            chunks = [data for _, data in iter_sse_json(raw.content)]
        except ValueError as exc:
            raise ResponseFormatError(
                f"{self.provider_key} sent a stream event that is not JSON",
                content=raw.content,
                **error_context(self, raw),
            ) from exc
        for chunk in chunks:
            failure = stream_error(chunk)
            if failure is not None:
                raise ProviderError(
                    f"{self.provider_key} stream failed: {failure}", **error_context(self, raw)
                )
        return self._parse_response(chunks, raw, streamed=True)

    async def _stream(
        self, params: PreparedRequest, payload: dict[str, Any], emit: Callable[[str], None]
    ) -> LLM_Response:
        url, query = self._endpoint(params.model, stream=True)
        reader = ContentStreamReader()
        return await stream_answer(
            self, payload, reader, emit, url=url, headers=self._request_headers(), params=query
        )

    def _parse_response(self, body: Any, raw: RawResponse, *, streamed: bool = False) -> LLM_Response:
        try:
            whole = fold_stream(body) if streamed else body
            text, calls, detail = read_response(whole, raw.bytes_sent, raw.bytes_received)
        except ToolCallFormatError as exc:
            raise MalformedToolCallError(
                f"{self.provider_key} {exc}", content=raw.content, **error_context(self, raw)
            ) from exc
        except WireFormatError as exc:
            raise ResponseFormatError(
                f"{self.provider_key} {exc}", content=raw.content, **error_context(self, raw)
            ) from exc
        return LLM_Response(text, None, calls, detail=detail)


def _contents(
    history: Iterable[ChatHistoryItem], style: ChatStyle, *, send_ids: bool
) -> list[dict[str, Any]]:
    items = [i for i in history if i.role is not ChatRole.SYSTEM]
    calls = {c.call_id: c for i in items for c in i.tool_calls}
    contents: list[dict[str, Any]] = []
    for item in items:
        role = "model" if item.role is ChatRole.ASSISTANT else "user"
        parts = _parts(item, style, calls, send_ids)
        if not parts:
            continue
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return contents


def _parts(
    item: ChatHistoryItem, style: ChatStyle, calls: Mapping[str, CallParams], send_ids: bool
) -> list[dict[str, Any]]:
    if style is ChatStyle.PLAIN:
        text = item.as_plain_text()
        return [{"text": text}] if text else []
    if item.role is ChatRole.TOOL:
        call = calls.get(item.tool_call_id or "")
        name = item.name or (call.name if call else None)
        if not name:
            raise ConfigurationError(
                f"Gemini needs the tool name of the result for call {item.tool_call_id!r}: "
                "build it with ChatHistoryItem.tool_result(call, result) or pass name=..."
            )
        response: dict[str, Any] = {"name": name, "response": {"output": _json_or_text(item.content)}}
        if send_ids and isinstance(call, GeminiToolCall) and call.provider_id:
            response["id"] = call.call_id
        return [{"functionResponse": response}]
    parts: list[dict[str, Any]] = [{"text": item.content}] if item.content else []
    for call in item.tool_calls:
        function_call: dict[str, Any] = {"name": call.name, "args": dict(call.kwargs)}
        if send_ids and isinstance(call, GeminiToolCall) and call.provider_id:
            function_call["id"] = call.call_id
        part: dict[str, Any] = {"functionCall": function_call}
        if isinstance(call, GeminiToolCall) and call.thought_signature:
            part["thoughtSignature"] = call.thought_signature
        parts.append(part)
    return parts


def _json_or_text(content: str) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return content


def _declaration(spec: ToolSpec) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": spec.name, "description": spec.description}
    # Gemini rejects an OBJECT schema with no properties, so a tool without arguments declares none.
    if spec.parameters.get("properties"):
        declaration["parameters"] = gemini_schema(spec.parameters)
    return declaration
