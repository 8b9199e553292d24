"""How the codecs refuse an answer: pydantic models of what they read, and one guard at each entry point.

Every codec reads outside input, so each says what it reads as pydantic models (containers where
containers belong, text where text belongs, counts as :data:`Count`, costs as :data:`Cost`) and checks
an answer against them before reading it (:func:`validated`). Extra fields are allowed: providers add
them all the time. :func:`guarded` wraps each public entry point of a codec so that whatever slips past
the models (a shape no model describes) still leaves as :class:`~statek.wire.errors.WireFormatError`,
never as a ``KeyError`` or ``TypeError`` that loses the answer's bytes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from ..limits import MAX_COUNT
from ..secrets import clip
from .errors import WireFormatError
from .numbers import count, reported_cost

__all__ = ["Count", "Cost", "Label", "WireModel", "guarded", "plain_counts", "validated"]

Count = Annotated[int, BeforeValidator(lambda value: count(value) or 0)]
"""A token count: absent or ``null`` is 0; otherwise a non-negative integer within bounds (see :func:`count`)."""
Cost = Annotated[Decimal | None, BeforeValidator(reported_cost)]
"""A provider's cost report in USD, or ``None`` for none or an unusable one (see :func:`reported_cost`)."""
Label = Annotated[str | None, BeforeValidator(lambda value: value if isinstance(value, str) else None)]
"""A descriptive field (model name, finish reason): its text, or ``None`` when it is not text. Never a
reason to refuse an answer: Vertex AI sends ``finishReason`` as an enum number, for one."""


class WireModel(BaseModel):
    """Base of the answer models: extra fields allowed and kept, nothing coerced silently."""

    model_config = ConfigDict(extra="allow", frozen=True)


M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], data: Any, what: str) -> M:
    """``data`` checked against ``model``; :class:`WireFormatError` naming the first bad fields."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc'])) or what}: {error['msg']}" for error in exc.errors()[:3]
        )
        raise WireFormatError(f"{what} does not follow the wire format: {problems}") from None


def plain_counts(data: Mapping[str, Any], keys: tuple[str, ...]) -> bool:
    """True when every one of ``keys`` in ``data`` is absent, ``null`` or a plain ``int`` within the
    bounds of :data:`Count`: then a model whose counts are those keys accepts them, and a codec may
    skip validating them (the common case, at a tenth of the cost). False says nothing: validate."""
    for key in keys:
        value = data.get(key)
        if value is not None and (type(value) is not int or not 0 <= value <= MAX_COUNT):
            return False
    return True


# What reading a wrong shape raises in plain Python code; MemoryError and the like are not ours to hide.
_MALFORMED = (KeyError, IndexError, TypeError, AttributeError, ValueError, ArithmeticError, RecursionError)

F = TypeVar("F", bound=Callable[..., Any])


def guarded(function: F) -> F:
    """``function`` with every exception a malformed answer can cause turned into :class:`WireFormatError`
    (its subclasses, such as a stream failure or a bad tool call, pass unchanged)."""

    @functools.wraps(function)
    def guard(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except WireFormatError:
            raise
        except _MALFORMED as exc:
            raise WireFormatError(f"unreadable answer ({type(exc).__name__}: {clip(exc, 200)})") from exc

    return guard  # type: ignore[return-value]
