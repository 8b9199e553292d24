"""Which provider a request goes to, by its URL: the table the httpx transport looks hosts up in.

Sources, the first match winning:

1. the ``endpoints`` a user gives (``{"https://gateway.internal": "OPENAI"}``);
2. the URLs configured for registered providers (``{KEY}_API_URL`` in the environment and custom
   providers registered with :func:`statek.add_provider`);
3. the catalogue's default URLs (OpenAI, OpenRouter, Groq, ... and the local servers' ports);
4. the official SDKs' own base-URL variables (:data:`SDK_BASE_URLS`: ``OPENAI_BASE_URL``,
   ``ANTHROPIC_BASE_URL``, ...), for hosts none of the above names;
5. the public endpoints whose host depends on an account: Azure OpenAI and Microsoft Foundry
   (``*.openai.azure.com``, ``*.services.ai.azure.com``), Bedrock, Cloudflare, Vertex AI
   (``*aiplatform.googleapis.com``), from the catalogue's URL shapes; the Gemini API and Anthropic.

A request no source names is still an LLM call when its body has the fields of its wire format: it
goes to the format's generic provider (:func:`generic_route`).

Hosts are matched with their port (``localhost:8080`` is llama.cpp, ``localhost:11434`` Ollama).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..exceptions import ConfigurationError
from ..telemetry import WireEndpoint
from ..wire.openai_chat import OPENAI_PROFILE, ChatCompletionsProfile

__all__ = ["SDK_BASE_URLS", "EndpointTable", "ProviderRoute", "default_table", "generic_route", "route_for"]

_DEFAULT_PORTS = {"https": 443, "http": 80}
_GOOGLE_FORMATS = frozenset({"gemini", "gemini_embeddings"})
_GEMINI_API_HOST = "generativelanguage.googleapis.com"
_VERTEX_HOST = re.compile(r"^(?:[a-z0-9-]+-)?aiplatform\.googleapis\.com$")


@dataclass(frozen=True, slots=True)
class ProviderRoute:
    """A provider as the transport reports it: who (for telemetry, jobs and prices) and, for
    OpenAI-shaped answers, the profile its usage is read with."""

    provider_key: str
    genai_provider_name: str
    pricing_provider: str
    profile: ChatCompletionsProfile = OPENAI_PROFILE

    def endpoint(self, host: str | None, port: int | None) -> WireEndpoint:
        """The telemetry view of this route for a request to ``host:port``."""
        genai, pricing = self.genai_provider_name, self.pricing_provider
        if self.provider_key == "VERTEXAI" and host:
            genai = "gcp.vertex_ai" if _VERTEX_HOST.match(host) else "gcp.gemini"
            if _VERTEX_HOST.match(host):
                pricing = "VERTEX"  # Vertex AI bills at its own prices (issue 21)
        return WireEndpoint(self.provider_key, genai, pricing, host, port)


def route_for(name: str) -> ProviderRoute:
    """The route of the registered provider ``name`` (any alias, any case); ``ConfigurationError``
    for an unknown name."""
    from ..providers.registry import _lookup, _normalise

    entry = _lookup(_normalise(name))
    cls = entry.load()
    profile = getattr(cls, "profile", OPENAI_PROFILE)
    return ProviderRoute(
        entry.key,
        cls.genai_provider_name
        if not entry.custom or cls.genai_provider_name != "openai"
        else entry.key.lower(),
        cls.pricing_provider or entry.key,
        profile if isinstance(profile, ChatCompletionsProfile) else OPENAI_PROFILE,
    )


SDK_BASE_URLS: tuple[tuple[str, str], ...] = (
    ("OPENAI_BASE_URL", "OPENAI"),
    ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI"),
    ("ANTHROPIC_BASE_URL", "ANTHROPIC"),
    ("GOOGLE_GEMINI_BASE_URL", "VERTEXAI"),
    ("GOOGLE_VERTEX_BASE_URL", "VERTEXAI"),
)
"""The environment variables the official SDKs (openai, anthropic, google-genai) read their base URL
from, and the provider a request to that host is."""

_GENERIC = {
    "openai_chat": ("OPENAI_COMPATIBLE", "openai_compatible"),
    "openai_responses": ("OPENAI_COMPATIBLE", "openai_compatible"),
    "openai_embeddings": ("OPENAI_COMPATIBLE", "openai_compatible"),
    "anthropic": ("ANTHROPIC_COMPATIBLE", "anthropic_compatible"),
    "gemini": ("GEMINI_COMPATIBLE", "gemini_compatible"),
    "gemini_embeddings": ("GEMINI_COMPATIBLE", "gemini_compatible"),
}
# Model ids only their maker serves under that name: priced at the maker's prices wherever they are
# called. Any other id (llama, mistral, qwen, ... served by many) is priced only if the user priced it
# for the generic provider (``set_model_pricing("OPENAI_COMPATIBLE", "llama3", ...)``).
_MODEL_MAKERS = (
    (("gpt-", "o1", "o3", "o4", "chatgpt-", "text-embedding-", "omni-moderation"), "OPENAI"),
    (("claude-",), "ANTHROPIC"),
    (("gemini-",), "GEMINI"),
)
_generic_routes: dict[tuple[str, str | None], ProviderRoute] = {}


def generic_route(wire_format: str, model: str | None) -> ProviderRoute:
    """The route of a call in ``wire_format`` to a host no table names: the format's generic provider
    (``OPENAI_COMPATIBLE``, ``ANTHROPIC_COMPATIBLE``, ``GEMINI_COMPATIBLE``; ``gen_ai.provider.name``
    in lower case), priced as its maker's model when the model id is one only its maker serves
    (``gpt-*``, ``claude-*``, ``gemini-*``), else under the generic provider (``unpriced`` unless
    the user priced that model for it)."""
    found = _generic_routes.get((wire_format, model))
    if found is not None:
        return found
    key, genai = _GENERIC[wire_format]
    pricing = key
    if model:
        for prefixes, maker in _MODEL_MAKERS:
            if model.startswith(prefixes):
                pricing = route_for(maker).pricing_provider
                break
    route = ProviderRoute(key, genai, pricing)
    if len(_generic_routes) < 4096:  # bounded: model ids come from outside
        _generic_routes[(wire_format, model)] = route
    return route


_Pattern = tuple[re.Pattern[str], ProviderRoute, frozenset[str] | None]


def _host_port(url: str) -> tuple[str, int] | None:
    parts = urlsplit(url)
    if not parts.hostname or "{" in parts.netloc:
        return None
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    return (parts.hostname.lower(), port) if port else None


def _host_pattern(url_hint: str) -> re.Pattern[str] | None:
    host = url_hint.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    if "{" not in host:
        return None
    return re.compile("^" + re.sub(r"\\\{[^}]*\\\}", "[^.]+", re.escape(host)) + "$")


class EndpointTable:
    """Provider routes by ``(host, port)``, plus host patterns for account-specific endpoints."""

    __slots__ = ("_hosts", "_memo", "_patterns")

    def __init__(
        self,
        hosts: Mapping[tuple[str, int], ProviderRoute],
        patterns: tuple[_Pattern, ...] = (),
    ) -> None:
        self._hosts = dict(hosts)
        self._patterns = patterns
        self._memo: dict[tuple[str, int, str], ProviderRoute | None] = {}

    def lookup(
        self, host: str, port: int | None, scheme: str = "https", wire_format: str = "openai_chat"
    ) -> ProviderRoute | None:
        """The route for a request in ``wire_format`` to ``host:port``; ``None`` for no known provider.

        A host pattern may be limited to some formats: Vertex AI's hosts serve both Google's own
        format (provider ``VERTEXAI``) and an OpenAI-compatible one (``GEMINI_ENTERPRISE``)."""
        port = port or _DEFAULT_PORTS.get(scheme, 443)
        found = self._hosts.get((host, port))
        if found is not None:
            return found
        key = (host, port, wire_format)
        if key in self._memo:  # hosts matched against the patterns once (unknown ones included)
            return self._memo[key]
        for pattern, route, formats in self._patterns:
            if (formats is None or wire_format in formats) and pattern.match(host):
                found = route
                break
        if len(self._memo) < 1024:  # bounded: hosts come from outside
            self._memo[key] = found
        return found

    def with_endpoints(self, endpoints: Mapping[str, str]) -> EndpointTable:
        """This table with ``endpoints`` (base URL -> provider name) taking precedence."""
        hosts = dict(self._hosts)
        for url, name in endpoints.items():
            where = _host_port(url)
            if where is None:
                raise ConfigurationError(
                    f"endpoint {url!r} is not an http(s) URL with a host: pass e.g. 'https://gateway.internal'"
                )
            hosts[where] = route_for(name)
        return EndpointTable(hosts, self._patterns)


def _build() -> EndpointTable:
    from ..providers.catalog import CATALOG
    from ..providers.registry import _custom
    from ..settings import load_provider_settings

    hosts: dict[tuple[str, int], ProviderRoute] = {}
    anthropic, vertex = route_for("ANTHROPIC"), route_for("VERTEXAI")
    patterns: list[_Pattern] = [(_VERTEX_HOST, vertex, _GOOGLE_FORMATS)]

    def put(url: str | None, route: ProviderRoute) -> None:
        where = _host_port(url) if url else None
        if where is not None:
            hosts.setdefault(where, route)

    # Public endpoints first in code, lowest in precedence: configured URLs overwrite them below.
    for row in CATALOG:
        route = ProviderRoute(row.key, row.genai_provider_name, row.pricing_provider, row.profile)
        put(row.default_api_url, route)
        pattern = _host_pattern(row.url_hint) if row.url_hint else None
        if pattern is not None:
            patterns.append((pattern, route, None))
        elif row.url_hint:
            put(row.url_hint, route)
    put("https://api.anthropic.com", anthropic)
    put(f"https://{_GEMINI_API_HOST}", vertex)
    for variable, key in SDK_BASE_URLS:  # below every URL statek knows (setdefault)
        put(os.environ.get(variable), route_for(key))
    patterns.append((_VERTEX_HOST, vertex, None))
    for azure in (r"^[^.]+\.openai\.azure\.com$", r"^[^.]+\.cognitiveservices\.azure\.com$"):
        patterns.append((re.compile(azure), route_for("AZURE_OPENAI"), None))

    configured: dict[tuple[str, int], ProviderRoute] = {}
    for row in CATALOG:
        url = load_provider_settings([row.key, *row.aliases]).api_url
        where = _host_port(url) if url else None
        if where is not None:
            configured[where] = ProviderRoute(
                row.key, row.genai_provider_name, row.pricing_provider, row.profile
            )
    for key in ("ANTHROPIC", "VERTEXAI"):
        url = load_provider_settings([key]).api_url
        where = _host_port(url) if url else None
        if where is not None:
            configured[where] = route_for(key)
    for key, entry in list(_custom.items()):
        url = load_provider_settings([key], defaults=entry.settings).api_url
        where = _host_port(url) if url else None
        if where is not None:
            configured[where] = route_for(key)
    hosts.update(configured)
    return EndpointTable(hosts, tuple(patterns))


_cache: tuple[tuple[object, ...], EndpointTable] | None = None
_cache_lock = threading.Lock()


def default_table() -> EndpointTable:
    """The table of every known and configured provider, rebuilt when a provider is registered or a
    ``*_API_URL`` variable changes."""
    from ..providers.registry import _custom

    global _cache
    key = (
        tuple(sorted((k, id(e)) for k, e in _custom.items())),
        tuple(sorted((k, v) for k, v in os.environ.items() if k.endswith("_API_URL"))),
        tuple(os.environ.get(variable) for variable, _ in SDK_BASE_URLS),
    )
    cached = _cache
    if cached is not None and cached[0] == key:
        return cached[1]
    with _cache_lock:
        table = _build()
        _cache = (key, table)
    return table
