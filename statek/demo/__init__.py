"""``statek demo``: a fleet of metered LLM jobs against the loopback provider simulator.

Modules, one job each:

- :mod:`.simulated`: the simulated models (real provider keys and model names) and how they answer;
- :mod:`.traffic`: job classes, the repeatable job plan, and how each job talks to its models;
- :mod:`.runner`: runs jobs concurrently, each a nested :class:`~statek.executors.job.Job`;
- :mod:`.session`: one demo run, simulated or against a real provider, and its :class:`DemoResult`;
- :mod:`.report`: the closing tables, read from ``LLM_Usage``;
- :mod:`.exporters`: ``/metrics`` and OTLP through :func:`statek.exporters.instrument`.

The command itself is :func:`statek.cli.demo.demo`.
"""

from __future__ import annotations

from .session import DemoResult, DemoRun, RealTarget

__all__ = ["DemoResult", "DemoRun", "RealTarget"]
