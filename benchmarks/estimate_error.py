"""How far a budget's prompt estimate is from a real tokenizer, on realistic requests.

Compares :func:`statek.executors.estimate.estimate_call`'s prompt tokens with OpenAI's ``o200k_base``
(gpt-4o, o-series) and ``cl100k_base`` (gpt-4, gpt-3.5) token counts of the same messages (plus the
chat format's 3 tokens per message and 3 for the reply, OpenAI's documented rule), for: a short chat,
a long history, a call with tools, a Chinese prompt, a Russian prompt, code. A ratio above 1 is an
overestimate (the budget reserves more than the call uses: safe); below 1 an underestimate (``old``:
the ratio of the estimate before non-Latin text was counted by its bytes, against o200k). For the
output, a reasoning call without a cap: what is reserved vs the 40,000 tokens such a model may write.

Needs a tokenizer that works offline: ``pip install bpe-openai`` (not a statek dependency: only this
measurement uses it).

    python -m benchmarks.estimate_error
"""

from __future__ import annotations

import sys
from typing import Any

_CJK = (
    "请根据以下季度报告，总结三条最重要的结论，并说明每一条对下季度销售策略的影响。"
    "报告显示，华东地区的收入同比增长了百分之十二，但华南地区由于物流成本上升而下降了百分之五。"
)
_RUSSIAN = (
    "Пожалуйста, кратко изложите основные выводы квартального отчёта и объясните, как они повлияют "
    "на стратегию продаж в следующем квартале, особенно в регионах с растущими расходами на логистику."
)
_CODE = """def merge(a: list[int], b: list[int]) -> list[int]:
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        if a[i] <= b[j]:
            out.append(a[i]); i += 1
        else:
            out.append(b[j]); j += 1
    return out + a[i:] + b[j:]
"""
_PROSE = (
    "Summarise the attached quarterly report in three bullet points and explain, for each one, how it "
    "should change next quarter's sales strategy in the regions where logistics costs went up. "
)


def _weather(city: str, unit: str = "celsius") -> str:
    """Return the current weather in a city, in the given unit (celsius or fahrenheit)."""
    return f"{city}: 21 {unit}"


def _search(query: str, limit: int = 5, site: str | None = None) -> list[str]:
    """Search the company wiki and return the titles of the best matching pages."""
    return [query][:limit]


def requests() -> dict[str, tuple[str | None, list[tuple[str, str]], list[Any]]]:
    """name -> (system prompt, [(role, text)], tools)."""
    history = []
    for turn in range(30):
        history.append(("user", f"Question {turn}: " + _PROSE))
        history.append(("assistant", "Here is what the report says: " + _PROSE * 2))
    return {
        "short chat": ("You are a helpful assistant.", [("user", "What is the capital of France?")], []),
        "long history (60 turns)": ("You are a careful analyst.", [*history, ("user", _PROSE)], []),
        "tools (2 functions)": (
            None,
            [("user", "What's the weather in Paris and Oslo?")],
            [_weather, _search],
        ),
        "Chinese prompt": ("你是一个有帮助的助手。", [("user", _CJK * 3)], []),
        "Russian prompt": (None, [("user", _RUSSIAN * 3)], []),
        "code": (None, [("user", "Review this function:\n" + _CODE * 3)], []),
    }


def _real(encoding: Any, system: str | None, turns: list[tuple[str, str]], tools: list[Any]) -> int:
    import inspect
    import json

    from statek.chat import select_tools

    count = 3  # the reply's priming
    for _, text in ([("system", system)] if system else []) + turns:
        count += 3 + len(encoding.encode(text)) + 1
    for spec in select_tools(tools, _SCOPE) if tools else ():
        count += len(
            encoding.encode(
                json.dumps(
                    {"name": spec.name, "description": spec.description, "parameters": spec.parameters}
                )
            )
        )
    del inspect
    return count


_SCOPE = "+_weather,_search"


def _old(system: str | None, turns: list[tuple[str, str]]) -> int:
    """The estimate before this change: characters over four, whatever the script."""
    texts = ([system] if system else []) + [text for _, text in turns]
    return -(-sum(len(t) for t in texts) // 4) + 8 * len(texts)


def main(argv: list[str] | None = None) -> None:
    try:
        import bpe_openai
    except ImportError:
        print("needs a tokenizer: pip install bpe-openai", file=sys.stderr)
        raise SystemExit(2) from None
    from statek import LLM_API, ChatHistoryItem
    from statek.executors.estimate import estimate_call

    api = LLM_API.get("OPENAI", model="gpt-4o", api_url="http://127.0.0.1:9/v1/chat/completions", api_key="k")
    encodings = {name: bpe_openai.get_encoding(name) for name in ("o200k_base", "cl100k_base")}
    print(f"{'request':26}{'old':>6}{'estimate':>10}{'o200k':>8}{'ratio':>7}{'cl100k':>8}{'ratio':>7}")
    for name, (system, turns, tools) in requests().items():
        history = [ChatHistoryItem.user(t) if r == "user" else ChatHistoryItem.assistant(t) for r, t in turns]
        metadata = {"LLM_TOOLS_SCOPE": _SCOPE} if tools else None
        params = api._prepare(system, "gpt-4o", metadata, tools, history, None, None, False)
        estimate = estimate_call(api, params).input_tokens
        old = _old(system, turns)
        real_o200k = _real(encodings["o200k_base"], system, turns, tools)
        shown = "-" if tools else f"{old / real_o200k:.2f}"  # the old estimate's tool sizes: not redone here
        row = f"{name:26}{shown:>6}{estimate:>10,}"
        for encoding in encodings.values():
            real = _real(encoding, system, turns, tools)
            row += f"{real:>8,}{estimate / real:>7.2f}"
        print(row)
    uncapped = api._prepare(None, "o3", None, None, [ChatHistoryItem.user("Prove it.")], None, None, False)
    worst = estimate_call(api, uncapped).output_tokens
    old = estimate_call(api, uncapped, worst_case=False).output_tokens
    print(
        f"\nreasoning without a cap (o3 writing 40,000 tokens): reserved {worst:,} output tokens "
        f"({worst / 40_000:.2f}x; the old estimate mode: {old:,}, {old / 40_000:.2f}x)"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
