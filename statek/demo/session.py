"""One demo run: providers (simulated or real), the fleet, and the numbers it produced.

:class:`DemoRun` is what ``statek demo`` drives and what tests call directly: it starts the loopback
simulator (unless a real provider was asked for), builds one ``LLM_API`` per model through
``LLM_API.get`` (the same registry users call), runs the fleet, and summarises the jobs' usage.
Telemetry export (``/metrics``, OTLP) is set up by the caller; the run itself only makes calls.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .._http import RetryPolicy
from ..executors.llm_usage import ModelUsage
from ..llm_api import LLM_API
from ..testing import ProviderSimulator
from .report import total_line
from .runner import FleetUsage, JobOutcome, run_fleet
from .simulated import DemoModel, simulated_models
from .traffic import Roles, job_plans

__all__ = ["DEMO_API_KEY", "DEMO_RETRY", "DemoResult", "DemoRun", "RealTarget"]

DEMO_API_KEY = "demo"
"""The key sent to the simulator (it accepts any)."""
DEMO_RETRY = RetryPolicy(max_attempts=4, initial_backoff=0.1, max_backoff=2.0, total_timeout=60.0)
"""Retries for the demo: the simulator's Retry-After (1 s) is honoured, other backoff kept short."""


@dataclass(frozen=True)
class RealTarget:
    """A real provider to use instead of the simulator: an ``LLM_API`` built from its env settings."""

    api: LLM_API
    model: str


@dataclass
class DemoResult:
    """What a run produced. Every usage number is read from ``LLM_Usage`` objects statek filled in:
    the run's parent job (grand total, per model), each class's parent job, and each job's own."""

    fleet: FleetUsage
    seconds: float
    simulator_requests: int | None = None
    simulator_statuses: Counter[int | None] = field(default_factory=Counter)

    @property
    def outcomes(self) -> list[JobOutcome]:
        """Every job, in the order they finished (past ``KEEP_OUTCOMES`` jobs, only the failed and
        budget-stopped ones: see :attr:`jobs`)."""
        return self.fleet.outcomes

    @property
    def jobs(self) -> int:
        """How many jobs ran."""
        return sum(ran for ran, _ in self.fleet.jobs.values())

    def by_model(self) -> dict[tuple[str, str], ModelUsage]:
        """Per ``(provider, model)``: the run job's per-model usage, failed calls included."""
        return self.fleet.run.by_model()

    def by_class(self) -> dict[str, tuple[int, int, ModelUsage]]:
        """Per job class that ran: ``(jobs, failed jobs, usage of the class's parent job)``."""
        out: dict[str, tuple[int, int, ModelUsage]] = {}
        for name, usage in self.fleet.classes.items():
            ran, failed = self.fleet.jobs.get(name, (0, 0))
            if ran:
                out[name] = (ran, failed, total_line(usage))
        return out

    def budget_stops(self) -> list[JobOutcome]:
        """The jobs a budget stopped: a call was refused before it was sent."""
        return [o for o in self.outcomes if o.stopped is not None]

    def total(self) -> ModelUsage:
        """The grand total: the run job's usage."""
        return total_line(self.fleet.run)


def _simulated_apis(sim: ProviderSimulator, models: tuple[DemoModel, ...]) -> dict[str, LLM_API]:
    urls = {"openai": sim.openai_url, "anthropic": sim.anthropic_url, "gemini": sim.gemini_url}
    apis: dict[tuple[str, str], LLM_API] = {}
    by_model: dict[str, LLM_API] = {}
    for m in models:
        key = (m.provider, repr(sorted(m.settings.items())))
        if key not in apis:  # one instance (and connection pool) per provider and settings
            apis[key] = LLM_API.get(
                m.provider, api_url=urls[m.wire], api_key=DEMO_API_KEY, retry=DEMO_RETRY, **m.settings
            )
        by_model[m.model] = apis[key]
    return by_model


class DemoRun:
    """A configured demo run; :meth:`run` executes it (blocking) and returns a :class:`DemoResult`.

    With ``real`` set, every job uses that provider and model; otherwise a
    :class:`~statek.testing.ProviderSimulator` on 127.0.0.1 plays every provider of
    :func:`~statek.demo.simulated.simulated_models`.
    """

    def __init__(
        self,
        *,
        jobs: int | None,
        duration: float | None = None,
        concurrency: int = 16,
        seed: int = 0,
        real: RealTarget | None = None,
        on_job_done: Callable[[JobOutcome], None] | None = None,
    ) -> None:
        self.jobs = jobs
        self.duration = duration
        self.concurrency = concurrency
        self.seed = seed
        self.real = real
        self.on_job_done = on_job_done

    def run(self) -> DemoResult:
        """Run every job to the end; blocking (it runs its own event loop)."""
        return asyncio.run(self.arun())

    async def arun(self) -> DemoResult:
        """:meth:`run`, for callers already inside an event loop."""
        if self.real is not None:
            apis: Mapping[str, LLM_API] = {self.real.model: self.real.api}
            return await self._fleet(Roles.single(self.real.model), apis, None)
        models = simulated_models()
        behaviors = {m.model: m.behavior for m in models}
        # Answers by content, not arrival order: the same seed gives the same calls and cost.
        async with ProviderSimulator(
            behaviors,
            seed=self.seed,
            max_recorded=0,
            index_by="content",  # keep no bodies: bounded memory
        ) as sim:
            return await self._fleet(Roles.simulated(), _simulated_apis(sim, models), sim)

    async def _fleet(
        self, roles: Roles, apis: Mapping[str, LLM_API], sim: ProviderSimulator | None
    ) -> DemoResult:
        began = time.monotonic()
        try:
            fleet = await run_fleet(
                job_plans(roles, seed=self.seed),
                apis,
                jobs=self.jobs,
                duration=self.duration,
                concurrency=self.concurrency,
                on_job_done=self.on_job_done,
            )
        finally:
            for api in {id(a): a for a in apis.values()}.values():
                await api.aclose()
        result = DemoResult(fleet, time.monotonic() - began)
        if sim is not None:
            result.simulator_requests = sim.request_count
            result.simulator_statuses = sim.status_counts
        return result
