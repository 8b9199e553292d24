"""A budget's limits (:class:`Budget`) and a snapshot of one (:class:`BudgetStatus`).

The accounting lives in :mod:`statek.executors.budget`, which re-exports both; see there and
``docs/budgets.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

from ..exceptions import ConfigurationError
from ..settings import (
    BUDGET_CALLS_ENV,
    BUDGET_TOKENS_ENV,
    BUDGET_UNPRICED_ENV,
    BUDGET_USD_ENV,
    MAX_TOKEN_USAGE_ENV,
    values_of,
)
from .budget_store import Period, check_key

__all__ = ["Budget", "BudgetStatus", "ReserveMode", "UnpricedPolicy", "default_limits"]

UnpricedPolicy = Literal["refuse", "allow"]
"""What a USD budget does with a call to a model that has no price: refuse it, or let it go uncounted."""
_POLICIES: tuple[UnpricedPolicy, ...] = ("refuse", "allow")
ReserveMode = Literal["worst_case", "estimate"]
"""What a call reserves: the most it can cost (default), or the old estimate (4,096 output tokens
for an uncapped call), whose overspend under concurrency ``docs/budgets.md`` bounds."""
_MODES: tuple[ReserveMode, ...] = ("worst_case", "estimate")
_PERIODS: tuple[Period, ...] = ("day", "month")


# ----------------------------------------------------------------------------- limits
@dataclass(frozen=True, slots=True, init=False)
class Budget:
    """A job's limits; ``None`` means no limit on that measure. ``Budget()`` limits nothing.

    ``usd``: spend in US dollars (exact ``Decimal``; strings and ints accepted). ``tokens``: input
    plus output tokens. ``calls``: calls sent, failed ones included. ``approx_tokens``: the original
    STATEK guard, ``(bytes sent + bytes received) // 4``. ``unpriced``: the policy for calls to
    models with no price under a USD limit (see the module docstring). Bad values raise
    :class:`~statek.exceptions.ConfigurationError`.
    """

    usd: Decimal | None = None
    tokens: int | None = None
    calls: int | None = None
    approx_tokens: int | None = None
    unpriced: UnpricedPolicy = "refuse"
    reserve: ReserveMode = "worst_case"
    cap_output: bool = False
    period: Period | None = None
    key: str | None = None

    def __init__(
        self,
        usd: Decimal | str | int | None = None,
        *,
        tokens: int | None = None,
        calls: int | None = None,
        approx_tokens: int | None = None,
        unpriced: UnpricedPolicy = "refuse",
        reserve: ReserveMode = "worst_case",
        cap_output: bool = False,
        period: Period | None = None,
        key: str | None = None,
    ) -> None:
        object.__setattr__(self, "usd", _usd(usd, "Budget(usd=...)"))
        object.__setattr__(self, "tokens", _count(tokens, "Budget(tokens=...)"))
        object.__setattr__(self, "calls", _count(calls, "Budget(calls=...)"))
        object.__setattr__(self, "approx_tokens", _count(approx_tokens, "Budget(approx_tokens=...)"))
        object.__setattr__(self, "unpriced", _policy(unpriced, "Budget(unpriced=...)"))
        if reserve not in _MODES:
            raise ConfigurationError(
                f"Budget(reserve=...) must be 'worst_case' or 'estimate', not {reserve!r}"
            )
        object.__setattr__(self, "reserve", reserve)
        if not isinstance(cap_output, bool):
            raise ConfigurationError(f"Budget(cap_output=...) must be True or False, not {cap_output!r}")
        object.__setattr__(self, "cap_output", cap_output)
        if period is not None and period not in _PERIODS:
            raise ConfigurationError(f"Budget(period=...) must be 'day', 'month' or None, not {period!r}")
        object.__setattr__(self, "period", period)
        if key is not None:
            if not isinstance(key, str) or not key.strip():
                raise ConfigurationError(f"Budget(key=...) must be a non-empty string, not {key!r}")
            try:
                check_key(key)
            except ValueError as bad:
                raise ConfigurationError(str(bad)) from None
        object.__setattr__(self, "key", key)

    @property
    def shared(self) -> bool:
        """Whether the budget is one account shared by every job with its key (a ``key`` or ``period``)."""
        return self.key is not None or self.period is not None

    @property
    def is_limited(self) -> bool:
        """Whether any measure has a limit."""
        return not (
            self.usd is None and self.tokens is None and self.calls is None and self.approx_tokens is None
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Budget:
        """The default budget of a job: ``STATEK_BUDGET_USD``, ``STATEK_BUDGET_TOKENS``,
        ``STATEK_BUDGET_CALLS``, ``STATEK_MAX_TOKEN_USAGE`` and ``STATEK_BUDGET_UNPRICED`` (empty or
        unset: no limit / ``refuse``), from ``environ`` or else the process environment and the
        ``.env`` file (:func:`statek.settings.environment`). A bad value raises
        ``ConfigurationError`` naming the variable."""
        raw = (
            values_of(_ENV_NAMES) if environ is None else tuple(environ.get(name, "") for name in _ENV_NAMES)
        )
        return _from_values(raw)

    def __str__(self) -> str:
        parts = []
        if self.usd is not None:
            parts.append(f"${self.usd}")
        if self.tokens is not None:
            parts.append(f"{self.tokens:,} tokens")
        if self.calls is not None:
            parts.append(f"{self.calls:,} calls")
        if self.approx_tokens is not None:
            parts.append(f"{self.approx_tokens:,} approximate tokens")
        text = ", ".join(parts) or "no limit"
        if self.period is not None:
            text += f" per {self.period}"
        if self.key is not None:
            text += f" for {self.key}"
        return text


_ENV_NAMES = (BUDGET_USD_ENV, BUDGET_TOKENS_ENV, BUDGET_CALLS_ENV, MAX_TOKEN_USAGE_ENV, BUDGET_UNPRICED_ENV)
_from_env_cache: dict[tuple[str, ...], Budget] = {}
_limits_cache: dict[tuple[str, ...], Budget | None] = {}


def _from_values(raw: tuple[str, ...]) -> Budget:
    """The budget of the values of :data:`_ENV_NAMES` (made once per distinct values)."""
    cached = _from_env_cache.get(raw)
    if cached is None:
        usd, tokens, calls, approx, policy = (value.strip() for value in raw)
        cached = Budget(
            _usd(usd or None, BUDGET_USD_ENV),
            tokens=_count(tokens or None, BUDGET_TOKENS_ENV),
            calls=_count(calls or None, BUDGET_CALLS_ENV),
            approx_tokens=_count(approx or None, MAX_TOKEN_USAGE_ENV),
            unpriced=_policy(policy.lower() or "refuse", BUDGET_UNPRICED_ENV),
        )
        _from_env_cache[raw] = cached
    return cached


def default_limits() -> Budget | None:
    """:meth:`Budget.from_env` when it limits anything, else ``None``: what a ``Job`` created without
    ``budget=`` counts against. The environment is read on every call (a value set or changed
    applies to the next job); what its values mean is worked out once per distinct values."""
    raw = values_of(_ENV_NAMES)
    try:
        return _limits_cache[raw]
    except KeyError:
        budget = _from_values(raw)  # a bad value raises here, and is never cached
        limits = _limits_cache[raw] = budget if budget.is_limited else None
        return limits


def _usd(value: object, where: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigurationError(f"{where} must be an amount in US dollars such as 2.50, not {value!r}")
    try:
        amount = Decimal(str(value).strip().lstrip("$"))
    except InvalidOperation:
        raise ConfigurationError(
            f"{where} must be an amount in US dollars such as 2.50, not {value!r}"
        ) from None
    if not amount.is_finite() or amount < 0:
        raise ConfigurationError(f"{where} must be a finite amount of 0 or more US dollars, not {value!r}")
    return amount


def _count(value: object, where: str) -> int | None:
    if value is None:
        return None
    text = value.strip().replace("_", "") if isinstance(value, str) else value
    number = None
    if isinstance(text, (int, str)) and not isinstance(text, bool):
        try:
            number = int(text)
        except ValueError:
            pass
    if number is None or number < 0:
        raise ConfigurationError(f"{where} must be a whole number of 0 or more, not {value!r}")
    return number


def _policy(value: object, where: str) -> UnpricedPolicy:
    if value not in _POLICIES:
        raise ConfigurationError(f"{where} must be 'refuse' or 'allow', not {value!r}")
    return value  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """A job's budget at one moment: the limits, what was spent, what is held by calls in flight.

    ``spent_usd`` sums the costs of the calls that had one; ``unpriced_calls`` counts the calls it
    leaves out (only possible under ``unpriced="allow"``). ``remaining_*`` is ``limit - spent -
    in flight`` (``None`` without a limit; below zero when a call cost more than its estimate).
    """

    budget: Budget
    spent_usd: Decimal
    spent_tokens: int
    spent_calls: int
    spent_approx_tokens: int
    reserved_usd: Decimal
    reserved_tokens: int
    reserved_calls: int
    unpriced_calls: int
    refusals: int

    @property
    def remaining_usd(self) -> Decimal | None:
        """USD left to reserve, or ``None`` without a USD limit."""
        limit = self.budget.usd
        return None if limit is None else limit - self.spent_usd - self.reserved_usd

    @property
    def remaining_tokens(self) -> int | None:
        """Tokens left to reserve, or ``None`` without a token limit."""
        limit = self.budget.tokens
        return None if limit is None else limit - self.spent_tokens - self.reserved_tokens

    @property
    def remaining_calls(self) -> int | None:
        """Calls left to reserve, or ``None`` without a call limit."""
        limit = self.budget.calls
        return None if limit is None else limit - self.spent_calls - self.reserved_calls

    @property
    def remaining_approx_tokens(self) -> int | None:
        """``STATEK_MAX_TOKEN_USAGE`` left (settled calls only), or ``None`` without that limit."""
        limit = self.budget.approx_tokens
        return None if limit is None else limit - self.spent_approx_tokens

    def __str__(self) -> str:
        parts = []
        budget = self.budget
        if budget.usd is not None:
            parts.append(f"${_money(self.spent_usd)} of ${_money(budget.usd)}")
        if budget.tokens is not None:
            parts.append(f"{self.spent_tokens:,} of {budget.tokens:,} tokens")
        if budget.calls is not None:
            parts.append(f"{self.spent_calls:,} of {budget.calls:,} calls")
        if budget.approx_tokens is not None:
            parts.append(f"{self.spent_approx_tokens:,} of {budget.approx_tokens:,} approximate tokens")
        text = "spent " + ", ".join(parts) if parts else "no limit"
        if self.unpriced_calls:
            text += f" (+{self.unpriced_calls:,} unpriced calls, not in the USD figure)"
        if self.refusals:
            text += f"; calls refused: {self.refusals:,}"
        return text


def _money(amount: Decimal) -> str:
    """``amount`` without trailing zeros and never in exponent notation."""
    return f"{amount.normalize():f}"
