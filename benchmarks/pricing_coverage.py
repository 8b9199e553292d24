"""Price coverage: the share of real model ids statek prices (status ``calculated``), by source.

Ids, each with the statek provider a user would call it through:

- LiteLLM's ``model_prices_and_context_window.json`` (``--litellm FILE``; it ships in the ``litellm``
  wheel as ``litellm/model_prices_and_context_window_backup.json``): every chat model of a provider
  statek ships;
- genai-prices' OpenRouter list (the ids OpenRouter serves);
- the recorded answers under ``tests/recordings`` (provider and answering model).

Each id is priced as a call of 1,000 input and 100 output tokens with the default prices (database,
shipped files), through the provider's price provider and database provider, as the metering path
does. Printed: priced / total per source and overall, and with ``--missing N`` the first unpriced ids
per provider.

    python -m benchmarks pricing_coverage [--litellm FILE] [--missing N]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

from statek.metering.litellm import LITELLM_PROVIDERS

# LiteLLM's provider names -> the statek provider a user calls that model through: the importer's
# own table, plus the providers whose ids users send but whose rows import-litellm does not convert.
LITELLM_TO_STATEK = {
    **LITELLM_PROVIDERS,
    "azure_ai": "MICROSOFT_FOUNDRY",
    "nebius": "NEBIUS",
    "cloudflare": "CLOUDFLARE",
}
ROOT = Path(__file__).resolve().parent.parent


def _providers() -> dict[str, tuple[str, str | None]]:
    """statek provider key -> (price-table provider, database provider)."""
    from statek.providers.catalog import CATALOG

    out = {row.key: (row.pricing_provider, row.price_provider) for row in CATALOG}
    out["ANTHROPIC"] = ("ANTHROPIC", "anthropic")
    out["GEMINI"] = ("GEMINI", "google")
    out["VERTEX"] = ("VERTEX", "google")
    out["VERTEXAI"] = ("GEMINI", "google")
    return out


def litellm_ids(path: Path) -> list[tuple[str, str]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    ids = []
    for name, spec in data.items():
        if not isinstance(spec, dict) or spec.get("mode") not in (None, "chat", "completion", "responses"):
            continue
        provider = LITELLM_TO_STATEK.get(str(spec.get("litellm_provider") or ""))
        if provider is None or "input_cost_per_token" not in spec:
            continue
        prefix = f"{spec['litellm_provider']}/"
        ids.append((provider, name.removeprefix(prefix)))
    return sorted(set(ids))


def openrouter_ids() -> list[tuple[str, str]]:
    from statek.metering.database import default_database

    database = default_database()
    provider = database.provider("openrouter")
    return [("OPENROUTER", m.id) for m in provider.models] if provider is not None else []


def recording_ids() -> list[tuple[str, str]]:
    ids = []
    for meta_path in sorted((ROOT / "tests" / "recordings").glob("*.meta.json")):
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("status") != 200:
            continue
        text = (meta_path.parent / meta["body_file"]).read_text(encoding="utf-8", errors="replace")
        model = None
        for line in text.splitlines():
            line = line.removeprefix("data:").strip()
            if not line.startswith("{"):
                continue
            try:
                body: Any = json.loads(line)
            except ValueError:
                continue
            model = body.get("model") or body.get("modelVersion") or (body.get("message") or {}).get("model")
            if model:
                break
        if model is None:
            try:
                body = json.loads(text)
                model = body.get("model") or body.get("modelVersion")
            except ValueError:
                pass
        if isinstance(model, str) and model:
            ids.append((str(meta["provider"]), model))
    return sorted(set(ids))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks pricing_coverage")
    parser.add_argument("--litellm", type=Path, help="LiteLLM's model_prices_and_context_window.json")
    parser.add_argument("--missing", type=int, default=0, help="show up to N unpriced ids per provider")
    args = parser.parse_args(argv)

    from statek.metering import PriceRegistry
    from statek.types import CallDetail

    registry = PriceRegistry(model_info_dir=None)
    providers = _providers()
    detail = CallDetail(0, 0, None, 1000, 100)
    sources = {"openrouter (genai-prices)": openrouter_ids(), "recordings": recording_ids()}
    if args.litellm:
        sources = {"litellm": litellm_ids(args.litellm), **sources}
    total_priced = total = 0
    for source, ids in sources.items():
        priced = 0
        missing: Counter[str] = Counter()
        shown: dict[str, list[str]] = {}
        for provider, model in ids:
            pricing, database = providers.get(provider, (provider, provider.lower()))
            cost = registry.price_call(pricing, model, detail, database_provider=database)
            if cost.status == "calculated":
                priced += 1
            else:
                missing[provider] += 1
                shown.setdefault(provider, []).append(model)
        total_priced, total = total_priced + priced, total + len(ids)
        print(f"{source:28s} {priced:5d} / {len(ids):5d} priced  {100 * priced / max(len(ids), 1):5.1f} %")
        if args.missing:
            for provider, count in missing.most_common():
                print(
                    f"    {provider:18s} {count:4d} unpriced, e.g. {', '.join(shown[provider][: args.missing])}"
                )
    print(f"{'all':28s} {total_priced:5d} / {total:5d} priced  {100 * total_priced / max(total, 1):5.1f} %")


if __name__ == "__main__":
    main()
