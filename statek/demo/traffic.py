"""The demo's workload: job classes, how each one talks to its models, and a repeatable job plan.

Four job classes, each a small, realistic program:

``chat``
    a support conversation of one to four turns under a long, shared system prompt (so prompt caches
    hit from the second conversation on);
``agent``
    a planner model with tools (search, order lookup, ticket) called for one to three steps, its tool
    calls executed locally and fed back, then a cheaper writer model answers; each agent job runs
    under a budget (:data:`AGENT_BUDGET`), and the ones whose planner would spend past it are stopped
    before that call is sent;
``summarise``
    a long document (15k to 90k tokens; the first one 230k, past Gemini's 200k long-context
    threshold) summarised, sometimes followed by a question about the same document (a cache read);
``reasoning``
    one or two hard questions with reasoning enabled.

Which model serves which role is decided by the plan (:func:`job_plans`) from a seed, so two runs with
the same seed send the same requests. Against a real provider (``statek demo --provider``) every role
is that provider's one model and the documents are short.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..chat import ChatHistoryItem, ToolCall
from ..exceptions import ProviderError
from ..executors.budget import Budget
from ..llm_api import LLM_API, MAX_TOKENS, LLM_Response
from ..llm_api import REASONING_EFFORT as _EFFORT

__all__ = [
    "AGENT_BUDGET",
    "AGENT_MAX_TOKENS",
    "JOB_CLASSES",
    "LONG_CONTEXT_TOKENS",
    "JobClassName",
    "JobPlan",
    "Roles",
    "job_plans",
    "run_job_plan",
]

JobClassName = Literal["chat", "agent", "summarise", "reasoning"]
JOB_CLASSES: tuple[JobClassName, ...] = ("chat", "agent", "summarise", "reasoning")
_WEIGHTS = (40, 25, 20, 15)

LONG_CONTEXT_TOKENS = 230_000
"""Prompt size of the demo's one long-context request (Gemini 2.5 Pro bills >200k tokens higher)."""

REAL_MAX_TOKENS = 256
"""The answer cap of every call when the demo runs against a real provider."""

AGENT_BUDGET = Budget(usd="0.015", unpriced="allow")
"""The budget of every ``agent`` job: at most $0.015. statek refuses the call that would pass it
(``BudgetExceededError``, nothing sent), so long investigations on the dearer planners stop there.
A model without a price (a local model with ``--provider``) is let through, counted in calls and
tokens, and named in the job's budget status."""
AGENT_MAX_TOKENS = 512
"""The answer cap of agent calls against the simulator: a budget estimates a call at its cap."""


@dataclass(frozen=True)
class Roles:
    """Which model plays each role. ``(provider, model)`` lists are drawn from in turn by the plan."""

    chat: Sequence[str]
    planner_writer: Sequence[tuple[str, str]]
    summariser: Sequence[str]
    reasoner: Sequence[str]
    long_context: str | None
    doc_tokens: tuple[int, int]
    max_tokens: int | None = None
    """A cap on every answer (``MAX_TOKENS``), for real providers: they bill, and small local
    models ramble until their context is full."""

    @classmethod
    def simulated(cls) -> Roles:
        """The roles of the built-in fleet (:func:`statek.demo.simulated.simulated_models`)."""
        return cls(
            # Repeats are weights; the order spreads every model over the first jobs of a small run.
            chat=(
                "gpt-4o-mini",
                "claude-haiku-4-5",
                "acme/support-llama-8b-ft",
                "deepseek-chat",
                "gemini-2.5-flash",
                "meta-llama/llama-3.3-70b-instruct",
                "gpt-4o-mini",
                "deepseek-chat",
                "claude-haiku-4-5",
                "gpt-4o-mini",
            ),
            planner_writer=(
                ("claude-sonnet-4-5", "claude-haiku-4-5"),
                ("gpt-5.4-mini", "gpt-4o-mini"),
                ("claude-sonnet-4-5", "claude-haiku-4-5"),
            ),
            summariser=("gemini-2.5-pro", "meta-llama/llama-3.3-70b-instruct", "gemini-2.5-pro"),
            reasoner=("gpt-5-mini", "deepseek-reasoner", "gemini-2.5-flash", "gpt-5-mini"),
            long_context="gemini-2.5-pro",
            doc_tokens=(15_000, 90_000),
        )

    @classmethod
    def single(cls, model: str) -> Roles:
        """Every role played by one real model, with short documents (it costs real money)."""
        return cls(
            (model,), ((model, model),), (model,), (model,), None, (300, 900), max_tokens=REAL_MAX_TOKENS
        )


@dataclass(frozen=True)
class JobPlan:
    """One job to run: its id, class, the models it uses and the shape of its work."""

    job_id: str
    job_class: JobClassName
    models: Mapping[str, str]
    turns: int = 1
    doc_tokens: int = 0
    follow_up: bool = False
    effort: str = "medium"
    app: int = 0
    seed: int = 0
    max_tokens: int | None = None
    budget: Budget | None = None
    """The job's budget; ``None``: the environment's default (:meth:`Budget.from_env`)."""


def job_plans(roles: Roles, *, seed: int = 0) -> Iterator[JobPlan]:
    """An endless, repeatable stream of job plans; take as many as the run needs.

    The first four jobs are one of each class (so even a tiny run shows every class), the first
    ``summarise`` job is the long-context one; after that classes follow their weights.
    """
    rng = random.Random(seed)
    turns = {
        name: itertools.cycle(getattr(roles, attr))
        for name, attr in (
            ("chat", "chat"),
            ("agent", "planner_writer"),
            ("summarise", "summariser"),
            ("reasoning", "reasoner"),
        )
    }
    long_context_done = roles.long_context is None
    cap = roles.max_tokens
    for index in itertools.count():
        job_class = JOB_CLASSES[index] if index < len(JOB_CLASSES) else rng.choices(JOB_CLASSES, _WEIGHTS)[0]
        job_id = f"{job_class}-{index:05d}"
        pick = next(turns[job_class])
        job_seed = rng.getrandbits(32)
        if job_class == "chat":
            yield JobPlan(
                job_id,
                "chat",
                {"chat": pick},
                turns=rng.randint(1, 4),
                app=rng.randrange(3),
                seed=job_seed,
                max_tokens=cap,
            )
        elif job_class == "agent":
            planner, writer = pick
            yield JobPlan(
                job_id,
                "agent",
                {"planner": planner, "writer": writer},
                turns=rng.randint(1, 3),
                seed=job_seed,
                max_tokens=cap or AGENT_MAX_TOKENS,
                budget=AGENT_BUDGET,
            )
        elif job_class == "summarise":
            model, tokens = pick, rng.randint(*roles.doc_tokens)
            if not long_context_done:
                model, tokens, long_context_done = roles.long_context, LONG_CONTEXT_TOKENS, True
            yield JobPlan(
                job_id,
                "summarise",
                {"summariser": model},
                doc_tokens=tokens,
                follow_up=rng.random() < 0.4,
                seed=job_seed,
                max_tokens=cap,
            )
        else:
            yield JobPlan(
                job_id,
                "reasoning",
                {"reasoner": pick},
                turns=rng.randint(1, 2),
                effort=rng.choice(("low", "medium", "high")),
                seed=job_seed,
                max_tokens=cap,
            )


# ----------------------------------------------------------------------------- tools the agent offers


def search_knowledge_base(query: str) -> str:
    """Search the help-centre articles.

    Args:
        query: what to look for
    """
    return f"3 articles match {query!r}: 'Refunds', 'Damaged deliveries', 'Return labels'."


def get_order(order_id: str) -> str:
    """Look up an order by its id.

    Args:
        order_id: the order number, e.g. A-1042
    """
    return f"Order {order_id}: 2 items, delivered 3 days ago, one item reported damaged."


def create_ticket(summary: str, priority: str = "normal") -> str:
    """Open a support ticket.

    Args:
        summary: one line describing the problem
        priority: low, normal or high
    """
    return f"Ticket T-{abs(hash(summary)) % 10_000:04d} opened ({priority})."


TOOLS = (search_knowledge_base, get_order, create_ticket)
_TOOLS_BY_NAME = {t.__name__: t for t in TOOLS}


def _run_tool(call: ToolCall) -> str:
    tool = _TOOLS_BY_NAME.get(call.name)
    if tool is None:
        return f"unknown tool {call.name!r}"
    try:
        return str(tool(**call.kwargs))
    except TypeError as exc:  # a real model may send wrong arguments; tell it, as an agent would
        return f"bad arguments for {call.name}: {exc}"


# ----------------------------------------------------------------------------- text


_WORDS = (
    "the",
    "customer",
    "invoice",
    "shipment",
    "refund",
    "policy",
    "quarter",
    "revenue",
    "contract",
    "clause",
    "supplier",
    "warranty",
    "delivery",
    "report",
    "analysis",
    "margin",
    "forecast",
    "region",
    "team",
    "product",
    "release",
    "incident",
    "latency",
    "budget",
    "risk",
    "compliance",
    "audit",
    "review",
    "meeting",
    "decision",
    "summary",
    "appendix",
    "section",
    "table",
    "figure",
    "growth",
    "cost",
    "usage",
    "model",
    "provider",
    "token",
    "cache",
    "request",
    "response",
    "error",
    "retry",
    "capacity",
    "schedule",
    "priority",
    "milestone",
)
_CORPUS: list[str] = []


def _document(tokens: int, title: str, seed: int) -> str:
    """About ``tokens`` tokens (four characters each) of document text, distinct per ``title``."""
    if not _CORPUS:
        rng = random.Random(20240501)
        _CORPUS.append(" ".join(rng.choice(_WORDS) for _ in range(260_000)))
    corpus = _CORPUS[0]
    chars = tokens * 4
    start = random.Random(seed).randrange(max(len(corpus) - chars, 1))
    body = corpus[start : start + chars]
    while len(body) < chars:  # only for documents longer than the corpus
        body += " " + corpus[: chars - len(body)]
    return f"# {title}\n\n{body}"


_APPS = (
    ("Acme Shop support", "You answer customers of Acme Shop about orders, deliveries, refunds and returns."),
    ("Northwind HR helpdesk", "You answer employees' questions about leave, payroll, benefits and policies."),
    (
        "Contoso IT service desk",
        "You help staff with laptops, accounts, VPN, printers and software requests.",
    ),
)


def _system_prompt(app: int) -> str:
    name, role = _APPS[app]
    rules = _document(1_800, f"{name}: policies and tone of voice", seed=app)
    return f"You are the assistant of {name}. {role} Be brief and friendly.\n\n{rules}"


_AGENT_SYSTEM = _document(1_400, "Agent operating procedures", seed=99)
_QUESTIONS = (
    "Where is my order and when will it arrive?",
    "Can I return an item I bought five weeks ago?",
    "My payment failed twice, what should I do?",
    "How do I change the delivery address?",
    "The product arrived damaged, can I get a refund?",
)
_PROBLEMS = (
    (
        "A train leaves at 9:40 and travels 310 km at 124 km/h; a second leaves at 10:05 at 155 km/h. When "
        "does the second overtake the first?"
    ),
    "Prove that the sum of the first n odd numbers is n squared.",
    "Plan the cheapest way to ship 1,240 parcels across three warehouses with the given capacities.",
    "Which of these four contracts has the lowest total cost over five years, given the escalation clauses?",
)


# ----------------------------------------------------------------------------- running one job


class JobFailed(Exception):
    """A call of the job failed for good; ``model`` is the model that failed, ``cause`` the error."""

    def __init__(self, model: str, cause: Exception) -> None:
        super().__init__(f"{model}: {type(cause).__name__}")
        self.model = model
        self.cause = cause


async def _call(plan: JobPlan, apis: Mapping[str, LLM_API], model: str, **kwargs: Any) -> LLM_Response:
    if plan.max_tokens is not None:
        kwargs["metadata"] = {**kwargs.get("metadata", {}), MAX_TOKENS: plan.max_tokens}
    api = apis[model]
    try:
        if getattr(api, "stream", False):  # a streaming provider: read the text as it arrives
            stream = api.stream_request(model=model, **kwargs)
            async for _ in stream:
                pass
            return stream.response
        return await api.process_request(model=model, **kwargs)
    except ProviderError as exc:
        raise JobFailed(model, exc) from exc


async def run_job_plan(plan: JobPlan, apis: Mapping[str, LLM_API]) -> None:
    """Run ``plan``'s calls in order with ``apis`` (one provider instance per model name).

    Raises :class:`JobFailed` when a call fails for good (after statek's retries): like a real job,
    the rest of the work is abandoned. A call the job's budget refuses raises
    :class:`~statek.exceptions.BudgetExceededError` (nothing was sent) and ends the job the same way.
    """
    rng = random.Random(plan.seed)
    if plan.job_class == "chat":
        await _chat(plan, apis, rng)
    elif plan.job_class == "agent":
        await _agent(plan, apis, rng)
    elif plan.job_class == "summarise":
        await _summarise(plan, apis, rng)
    else:
        await _reasoning(plan, apis, rng)


async def _chat(plan: JobPlan, apis: Mapping[str, LLM_API], rng: random.Random) -> None:
    model = plan.models["chat"]
    system = _system_prompt(plan.app)
    history: list[ChatHistoryItem] = []
    for turn in range(plan.turns):
        # The ticket makes each job's requests its own: the simulator answers by content (seeded).
        question = rng.choice(_QUESTIONS)
        history.append(ChatHistoryItem.user(f"Ticket {plan.job_id}: {question}" if turn == 0 else question))
        response = await _call(plan, apis, model, system_prompt=system, chat_history=list(history))
        history.append(ChatHistoryItem.assistant(response.text))


async def _agent(plan: JobPlan, apis: Mapping[str, LLM_API], rng: random.Random) -> None:
    planner, writer = plan.models["planner"], plan.models["writer"]
    history = [
        ChatHistoryItem.user(
            f"Ticket {plan.job_id}. Customer: {rng.choice(_QUESTIONS)} Investigate and resolve it."
        )
    ]
    for _ in range(plan.turns):
        response = await _call(
            plan,
            apis,
            planner,
            system_prompt=_AGENT_SYSTEM,
            chat_history=list(history),
            available_tools=TOOLS,
        )
        if not response.call_requests:
            return  # the planner answered by itself (real models do)
        history.append(ChatHistoryItem.assistant(response.text, response.call_requests))
        history.extend(ChatHistoryItem.tool_result(call, _run_tool(call)) for call in response.call_requests)
    # The writer sees the investigation as plain text: it is offered no tools.
    notes = "\n".join(item.as_plain_text() for item in history)
    await _call(
        plan,
        apis,
        writer,
        system_prompt="Write the final reply to the customer from these notes.",
        chat_history=[ChatHistoryItem.user(notes)],
    )


async def _summarise(plan: JobPlan, apis: Mapping[str, LLM_API], rng: random.Random) -> None:
    model = plan.models["summariser"]
    document = _document(plan.doc_tokens, f"Document {plan.job_id}", seed=plan.seed)
    history = [ChatHistoryItem.user(f"Summarise this document in ten bullet points.\n\n{document}")]
    response = await _call(
        plan, apis, model, system_prompt="You summarise business documents.", chat_history=history
    )
    if plan.follow_up:
        history += [
            ChatHistoryItem.assistant(response.text),
            ChatHistoryItem.user("Which risks does it mention, and who owns each?"),
        ]
        await _call(
            plan, apis, model, system_prompt="You summarise business documents.", chat_history=history
        )


async def _reasoning(plan: JobPlan, apis: Mapping[str, LLM_API], rng: random.Random) -> None:
    model = plan.models["reasoner"]
    for _ in range(plan.turns):
        await _call(
            plan,
            apis,
            model,
            chat_history=[ChatHistoryItem.user(f"Problem set {plan.job_id}: {rng.choice(_PROBLEMS)}")],
            enable_reasoning=True,
            metadata={_EFFORT: plan.effort},
        )
