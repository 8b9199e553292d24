"""Run a fleet of demo jobs: each a :class:`~statek.executors.job.Job`, many at once, until done.

Jobs nest the way an application would nest them: one job for the whole run, one per job class
inside it, and each demo job inside its class. statek adds every call to the job it was made in and
to all of that job's ancestors, so the run's and each class's totals are the SDK's own
``LLM_Usage``, not sums made here. The runner only schedules; metering happens where it always does,
inside ``LLM_API.process_request``.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from ..exceptions import BudgetExceededError
from ..executors.job import Job
from ..executors.llm_usage import LLM_Usage
from ..llm_api import LLM_API
from .traffic import JOB_CLASSES, JobClassName, JobFailed, JobPlan, run_job_plan

__all__ = ["JOB_CLASS_ATTRIBUTE", "KEEP_OUTCOMES", "FleetUsage", "JobOutcome", "run_fleet"]

JOB_CLASS_ATTRIBUTE = "job_class"
"""Job attribute naming the demo job class (on spans as ``statek.job.job_class``, never a metric label)."""


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """A finished job: its plan, the usage statek recorded for it, the failure that ended it, if any,
    and the budget refusal that stopped it, if any (a refused call was never sent: not a failure)."""

    plan: JobPlan
    usage: LLM_Usage
    failure: JobFailed | None
    seconds: float
    stopped: BudgetExceededError | None = None


KEEP_OUTCOMES = 10_000
"""Jobs whose whole outcome a run keeps; past it only failed and budget-stopped jobs are kept, and the
rest are counted (:attr:`FleetUsage.jobs`), so a long ``--duration`` run stays in bounded memory."""


@dataclass(frozen=True, slots=True)
class FleetUsage:
    """What a fleet run produced: the outcomes kept (every job up to :data:`KEEP_OUTCOMES`, then the
    failed and budget-stopped ones), ``(jobs, failed jobs)`` per class, and the usage of the run's and
    classes' parent jobs."""

    outcomes: list[JobOutcome]
    run: LLM_Usage
    classes: Mapping[JobClassName, LLM_Usage]
    jobs: Mapping[JobClassName, tuple[int, int]] = field(default_factory=dict)


_E = TypeVar("_E", bound=BaseException)


def _without_frames(error: _E) -> _E:
    """``error`` (and the errors it was raised from) without tracebacks: an outcome kept for the
    report must not keep the frames it was raised through, which hold whole prompts and documents."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        cause = getattr(current, "cause", None)
        if isinstance(cause, BaseException) and id(cause) not in seen:
            cause.__traceback__ = None
            seen.add(id(cause))
            cause_chain = cause.__cause__ or cause.__context__
            if cause_chain is not None:
                _without_frames(cause_chain)
        current = current.__cause__ or current.__context__
    return error


async def run_fleet(
    plans: Iterator[JobPlan],
    apis: Mapping[str, LLM_API],
    *,
    jobs: int | None,
    duration: float | None = None,
    concurrency: int = 16,
    run_id: str = "statek-demo",
    on_job_done: Callable[[JobOutcome], None] | None = None,
) -> FleetUsage:
    """Run jobs from ``plans`` with at most ``concurrency`` at a time.

    Stops taking new jobs after ``jobs`` jobs or once ``duration`` seconds have passed (whichever
    comes first; at least one must be given); jobs already running finish.
    """
    if jobs is None and duration is None:
        raise ValueError("give jobs=, duration= or both")
    deadline = time.monotonic() + duration if duration is not None else None
    outcomes: list[JobOutcome] = []
    counts: dict[JobClassName, tuple[int, int]] = {}
    started = 0

    def next_plan() -> JobPlan | None:
        nonlocal started
        if (jobs is not None and started >= jobs) or (deadline is not None and time.monotonic() >= deadline):
            return None
        started += 1
        return next(plans)

    async def run_one(plan: JobPlan) -> None:
        began = time.monotonic()
        failure = stopped = None
        async with Job(plan.job_id, budget=plan.budget) as job:
            try:
                await run_job_plan(plan, apis)
            except JobFailed as exc:
                failure = _without_frames(exc)
            except BudgetExceededError as exc:
                stopped = _without_frames(exc)
        outcome = JobOutcome(plan, job.usage, failure, time.monotonic() - began, stopped)
        ran, failed = counts.get(plan.job_class, (0, 0))
        counts[plan.job_class] = (ran + 1, failed + (failure is not None))
        if len(outcomes) < KEEP_OUTCOMES or failure is not None or stopped is not None:
            outcomes.append(outcome)
        if on_job_done is not None:
            on_job_done(outcome)

    async with Job(run_id) as run_job:
        # One context per class, entered into its class job: a task created in it starts inside
        # that job, so each demo job becomes a child of its class (and grandchild of the run).
        class_jobs = {
            name: Job(f"{run_id}/{name}", attributes={JOB_CLASS_ATTRIBUTE: name}) for name in JOB_CLASSES
        }
        contexts = {name: contextvars.copy_context() for name in JOB_CLASSES}
        for name, job in class_jobs.items():
            contexts[name].run(job.__enter__)

        async def worker() -> None:
            while (plan := next_plan()) is not None:
                await contexts[plan.job_class].run(asyncio.ensure_future, run_one(plan))

        try:
            await asyncio.gather(*(worker() for _ in range(max(concurrency, 1))))
        finally:
            for name, job in class_jobs.items():
                contexts[name].run(job.__exit__, None, None, None)
    return FleetUsage(outcomes, run_job.usage, {name: job.usage for name, job in class_jobs.items()}, counts)
