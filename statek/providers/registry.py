"""The provider registry: names (case-insensitive) to provider classes, settings and constructor arguments.

Built-in providers are the catalogue rows (:mod:`statek.providers.catalog`) plus Anthropic
(``ClaudeAI_API``) and Vertex AI (``VertexAI_API``), which are imported only when first asked for.
Custom providers join with :func:`add_provider`, the same way a built-in is looked up: they are
metered exactly alike because metering lives in ``LLM_API.process_request``.

Settings for a provider asked for as ``NAME`` (an alias or a canonical key) are resolved by
:func:`statek.settings.load_provider_settings`: explicit keyword arguments first (those given to
``get_provider`` over those stored by ``add_provider``), then ``NAME_API_URL`` / ``NAME_API_KEY`` / ...
then the same variables under the canonical key, then the provider's default URL.

A custom provider built on the OpenAI-compatible default needs an ``api_url`` but no key: it is
usually a local or in-house server, and a server that wants a key answers 401, which surfaces as
:class:`~statek.exceptions.AuthenticationError`. A custom ``llm_api_impl`` decides for itself through
its ``requires_api_key`` class attribute.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ..exceptions import ConfigurationError, UnknownProviderError
from ..llm_api import LLM_API, check_implementation, use_provider_directory
from ..secrets import scrub
from ..settings import (
    SETTING_SUFFIXES,
    VERTEXAI_LOCATION_ENV,
    VERTEXAI_PROJECT_ENV,
    ProviderSettings,
    default_provider_name,
    env_names,
    environment,
    load_provider_settings,
)

__all__ = ["ProviderEntry", "add_provider", "get_provider", "registered_providers"]

_NAME = re.compile(r"[A-Z][A-Z0-9_]*")


@dataclass(frozen=True, repr=False)
class ProviderEntry:
    """One registered provider: its canonical key, aliases, how to get its class, and stored arguments.

    ``settings`` and ``kwargs`` are what ``add_provider`` stored (empty for built-ins); a ``custom``
    entry's key goes to a constructor that names a ``provider_key`` parameter, else onto the instance
    after construction (the original STATEK never passed that keyword).
    """

    key: str
    aliases: tuple[str, ...]
    load: Callable[[], type[LLM_API]]
    settings: Mapping[str, Any] = field(default_factory=dict)
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    custom: bool = False
    url_hint: str | None = None

    def __repr__(self) -> str:
        # The stored settings hold the key as given to add_provider: show them scrubbed.
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__dataclass_fields__)
        return scrub(f"ProviderEntry({fields})")


def _lazy(module: str, name: str) -> Callable[[], type[LLM_API]]:
    def load() -> type[LLM_API]:
        cls: type[LLM_API] = getattr(importlib.import_module(module), name)
        return cls

    return load


def _builtin_entries() -> list[ProviderEntry]:
    from .catalog import CATALOG

    entries = [
        ProviderEntry(
            row.key, row.aliases, _lazy("statek.providers.catalog", row.class_name), url_hint=row.url_hint
        )
        for row in CATALOG
    ]
    entries.append(
        ProviderEntry(
            "ANTHROPIC",
            ("CLAUDE", "CLAUDEAI", "CLAUDE_AI"),
            _lazy("statek.providers.anthropic", "ClaudeAI_API"),
        )
    )
    entries.append(
        ProviderEntry(
            "VERTEXAI",
            ("VERTEX_AI", "VERTEX", "GOOGLE_VERTEXAI", "GOOGLE", "GEMINI"),
            _lazy("statek.providers.vertex", "VertexAI_API"),
        )
    )
    return entries


_lock = threading.Lock()
_builtin: dict[str, ProviderEntry] = {}
_custom: dict[str, ProviderEntry] = {}


def _builtins() -> dict[str, ProviderEntry]:
    if not _builtin:
        with _lock:
            if not _builtin:
                _builtin.update(
                    {name: entry for entry in _builtin_entries() for name in (entry.key, *entry.aliases)}
                )
    return _builtin


def _normalise(name: str) -> str:
    return str(name).strip().upper()


def registered_providers() -> dict[str, str]:
    """Every accepted provider name (built-in keys, aliases, custom names) mapped to its canonical key."""
    names = {name: entry.key for name, entry in _builtins().items()}
    names.update({name: entry.key for name, entry in _custom.items()})
    return dict(sorted(names.items()))


def _lookup(name: str) -> ProviderEntry:
    entry = _custom.get(name) or _builtins().get(name)
    if entry is None:
        known = registered_providers()
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownProviderError(
            f"Unsupported LLM API provider: {name}.{hint} Known providers: {', '.join(sorted(set(known.values())))} "
            "(aliases accepted, any case); register your own with statek.add_provider(...)."
        )
    return entry


_CACHE_SIZE = 256
_instances: OrderedDict[Hashable, LLM_API] = OrderedDict()


def get_provider(provider_name: str | None = None, model: str | None = None, **kwargs: Any) -> LLM_API:
    """The provider registered as ``provider_name`` (default :func:`~statek.settings.default_provider_name`),
    with ``model`` as its default model; the same instance for the same arguments and settings.

    ``api_url``, ``api_key``, ``response_format_file`` and ``use_prompt_caching`` in ``kwargs`` are
    settings; everything else goes to the provider's constructor (e.g. ``http_client``, ``timeout``,
    ``retry``, ``stream``; payload fields for OpenAI-compatible providers). Instances are cached, as in
    the original STATEK, keyed by the name asked for, the model, the keyword arguments and the
    provider's settings in the environment, so that an application calling ``get`` per request reuses
    one instance and its connection pool; :func:`add_provider` clears the cache. Arguments that cannot
    be compared (unhashable, not a dict or list) build a new instance each time. Raises
    :class:`~statek.exceptions.UnknownProviderError` (a ``ValueError``) for an unknown name and
    :class:`~statek.exceptions.ConfigurationError` (a ``ValueError``) naming the environment variables
    to set when the URL or a required key is missing.
    """
    env = environment()
    asked = _normalise(provider_name) if provider_name else default_provider_name(env)
    entry = _lookup(asked)
    key = _cache_key(asked, entry, model, kwargs, env)
    if key is not None:
        cached = _instances.get(key)
        if cached is not None:
            return cached
    api = _build(asked, entry, model, kwargs)
    if key is not None:
        with _lock:
            _instances[key] = api
            if len(_instances) > _CACHE_SIZE:
                _instances.popitem(last=False)
    return api


def _cache_key(
    asked: str, entry: ProviderEntry, model: str | None, kwargs: Mapping[str, Any], env: Mapping[str, str]
) -> Hashable | None:
    variables = [
        *env_names(asked).values(),
        *env_names(entry.key).values(),
        VERTEXAI_PROJECT_ENV,
        VERTEXAI_LOCATION_ENV,
    ]
    try:
        arguments = tuple(sorted((name, _frozen(value)) for name, value in kwargs.items()))
        key = (asked, model, arguments, tuple(env.get(v) for v in variables))
        hash(key)
    except TypeError:
        return None
    return key


def _frozen(value: Any) -> Hashable:
    if isinstance(value, Mapping):
        return ("dict", tuple(sorted((str(k), _frozen(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return ("seq", tuple(_frozen(v) for v in value))
    if isinstance(value, set):
        return ("set", frozenset(_frozen(v) for v in value))
    hash(value)  # TypeError for what cannot be compared: no caching then
    return (type(value).__qualname__, value)


def _build(asked: str, entry: ProviderEntry, model: str | None, kwargs: dict[str, Any]) -> LLM_API:
    kwargs = dict(kwargs)
    cls = entry.load()
    overrides = {**entry.settings, **{k: kwargs.pop(k) for k in SETTING_SUFFIXES if k in kwargs}}
    names = list(dict.fromkeys((asked, entry.key)))
    try:
        settings = load_provider_settings(names, overrides, defaults={"api_url": cls.default_api_url})
    except ValidationError as exc:
        invalid: ConfigurationError | None = _invalid(names[0], exc)
    else:
        invalid = None
    if invalid is not None:
        raise invalid  # raised outside the handler: pydantic's error (it quotes the key) is not its __context__
    _check(settings, cls, names, entry)
    arguments = {**entry.kwargs, **kwargs}
    # Only to a constructor that names the keyword: the original never passed it, and an
    # ``**kwargs`` constructor may forward what it gets (e.g. into the payload).
    named = entry.custom and _names(cls, "provider_key") and "provider_key" not in arguments
    if named:
        arguments["provider_key"] = entry.key
    if model is not None and _accepts(cls, "model"):
        arguments["model"] = model
    # As the original STATEK: impl(settings=settings, **kwargs).
    api = cls(settings=settings, **arguments)
    if entry.custom and not named and api.provider_key == cls.provider_key == LLM_API.provider_key:
        api.provider_key = entry.key  # the registered name, for telemetry and pricing
    if model is not None and getattr(api, "model", None) is None:
        api.model = model
    return api


def _check(settings: ProviderSettings, cls: type[LLM_API], names: list[str], entry: ProviderEntry) -> None:
    def variables(setting: str) -> str:
        return " or ".join(env_names(name)[setting] for name in names)

    if not settings.api_url:
        shape = f" (the full chat endpoint, e.g. {entry.url_hint})" if entry.url_hint else ""
        raise ConfigurationError(
            f"No settings found for {names[0]} provider. It has no API URL: set {variables('api_url')}{shape}, "
            "or pass api_url=..."
        )
    if cls.requires_api_key and settings.api_key is None:
        raise ConfigurationError(
            f"No settings found for {names[0]} provider. It needs an API key: set {variables('api_key')}, "
            "or pass api_key=..."
        )


def _invalid(name: str, exc: ValidationError) -> ConfigurationError:
    # Only field names and reasons: pydantic's own message would echo the value, which may be a key.
    problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return ConfigurationError(f"invalid settings for provider {name}: {problems}")


def _names(cls: type[LLM_API], parameter: str) -> bool:
    """Whether ``cls``'s constructor has a parameter called ``parameter`` (``**kwargs`` does not count)."""
    try:
        return parameter in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False


def _accepts(cls: type[LLM_API], parameter: str) -> bool:
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return True
    return parameter in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def add_provider(name: str, llm_api_impl: type[LLM_API] | None = None, **kwargs: Any) -> None:
    """Register a custom provider under ``name`` (case-insensitive; letters, digits and ``_``).

    ``api_url``, ``api_key``, ``response_format_file`` and ``use_prompt_caching`` become the provider's
    settings (environment variables ``NAME_API_URL`` etc. still apply to those not given); the other
    ``kwargs`` go to ``llm_api_impl``'s constructor on every ``get``, where ``get``'s own keyword
    arguments override them. Without ``llm_api_impl`` the OpenAI-compatible default is used.
    Raises ``ValueError`` when ``name`` is a built-in key or alias or is already registered.
    """
    key = _normalise(name)
    if not _NAME.fullmatch(key):
        raise ConfigurationError(
            f"provider name {name!r} must start with a letter and use only letters, digits and _ "
            "(it becomes the prefix of its environment variables, e.g. NAME_API_KEY)"
        )
    if llm_api_impl is None:
        from .openai_compat import OpenAICompatible_API

        llm_api_impl = OpenAICompatible_API
    if not (isinstance(llm_api_impl, type) and issubclass(llm_api_impl, LLM_API)):
        raise ConfigurationError(f"llm_api_impl must be a subclass of LLM_API, not {llm_api_impl!r}")
    check_implementation(llm_api_impl)
    settings = {k: kwargs.pop(k) for k in SETTING_SUFFIXES if k in kwargs}
    invalid = None
    try:
        ProviderSettings(**{k: v for k, v in settings.items() if v is not None})
    except ValidationError as exc:
        invalid = _invalid(key, exc)
    if invalid is not None:
        raise invalid  # outside the handler, as above
    impl = llm_api_impl
    entry = ProviderEntry(key, (), lambda: impl, settings=settings, kwargs=dict(kwargs), custom=True)
    builtin = _builtins().get(key)
    with _lock:
        if builtin is not None:
            raise ConfigurationError(
                f"LLM API provider already registered: {key} (reserved: a built-in name for {builtin.key})"
            )
        if key in _custom:
            raise ConfigurationError(f"LLM API provider already registered: {key}")
        _custom[key] = entry
        _instances.clear()


def _unregister(name: str) -> None:
    """Forget a custom provider (for tests). Built-in providers cannot be removed."""
    with _lock:
        _custom.pop(_normalise(name), None)
        _instances.clear()


_PROVIDER_MODULES = ("statek.providers.catalog", "statek.providers.anthropic", "statek.providers.vertex")


def provider_class(class_name: str) -> type[LLM_API] | None:
    """A built-in provider class by its class name (``"OpenAI_API"``), or ``None``."""
    for module_name in _PROVIDER_MODULES:
        provider = getattr(importlib.import_module(module_name), class_name, None)
        if isinstance(provider, type) and issubclass(provider, LLM_API):
            return provider
    return None


class _Directory:
    """This module as ``statek.llm_api``'s :class:`~statek.llm_api.ProviderDirectory`."""

    get_provider = staticmethod(get_provider)
    add_provider = staticmethod(add_provider)
    provider_class = staticmethod(provider_class)


use_provider_directory(_Directory())
