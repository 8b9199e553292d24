"""Reading the JSON schema named by a provider's ``response_format_file`` setting.

The file may hold a bare JSON schema, OpenAI's ``json_schema`` object (``{"name", "schema", ...}``)
or a whole OpenAI ``response_format`` (``{"type": "json_schema", "json_schema": {...}}``), so one
file can serve every wire format. Adapters load it once, at construction, so building a request
stays free of I/O and a bad file is reported before anything is sent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..exceptions import ConfigurationError

__all__ = ["load_response_schema"]


def load_response_schema(path: str, env_name: str) -> dict[str, Any]:
    """The JSON schema in ``path``; ``ConfigurationError`` naming ``env_name`` when it cannot be used."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"{env_name}: cannot read response format file {path!r}: {exc}") from exc
    except ValueError as exc:
        raise ConfigurationError(
            f"{env_name}: response format file {path!r} is not valid JSON: {exc}"
        ) from exc
    if isinstance(document, dict) and document.get("type") == "json_schema" and "json_schema" in document:
        document = document["json_schema"]
    if isinstance(document, dict) and isinstance(document.get("schema"), dict) and "name" in document:
        document = document["schema"]
    if not isinstance(document, dict):
        raise ConfigurationError(f"{env_name}: response format file {path!r} must hold a JSON schema object")
    return document
