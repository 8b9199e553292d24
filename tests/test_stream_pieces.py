"""``LLM_Stream`` hands pieces from the call's task to the caller in order, however the two interleave."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statek.streaming import LLM_Stream
from statek.types import CallDetail, LLM_Response

# A burst: pieces emitted back to back, then this many loop turns before the next burst.
bursts = st.lists(
    st.tuples(st.lists(st.text(min_size=1, max_size=3), max_size=4), st.integers(0, 3)), max_size=6
)


def _stream(plan: list[tuple[list[str], int]], fails: bool) -> LLM_Stream:
    async def run(emit: object) -> LLM_Response:
        for pieces, turns in plan:
            for piece in pieces:
                emit(piece)  # type: ignore[operator]
            for _ in range(turns):
                await asyncio.sleep(0)
        if fails:
            raise RuntimeError("the stream broke")
        return LLM_Response("".join(p for pieces, _ in plan for p in pieces), detail=CallDetail(0, 0, None))

    return LLM_Stream(None, run)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(plan=bursts, reader_turns=st.lists(st.integers(0, 2), max_size=30), fails=st.booleans())
def test_every_piece_arrives_in_order_then_the_response_or_the_error(
    plan: list[tuple[list[str], int]], reader_turns: list[int], fails: bool
) -> None:
    async def read() -> tuple[list[str], BaseException | None, LLM_Stream]:
        stream = _stream(plan, fails)
        got: list[str] = []
        turns = iter(reader_turns)
        try:
            async for piece in stream:
                got.append(piece)
                for _ in range(next(turns, 0)):
                    await asyncio.sleep(0)
        except RuntimeError as error:
            return got, error, stream
        return got, None, stream

    got, error, stream = asyncio.run(read())
    expected = [p for pieces, _ in plan for p in pieces]
    assert got == expected  # every piece, in order, also those emitted before a failure
    if fails:
        assert str(error) == "the stream broke"
    else:
        assert error is None and stream.response.text == "".join(expected)


async def test_a_caller_that_stops_early_cancels_the_call() -> None:
    cancelled = asyncio.Event()

    async def run(emit: object) -> LLM_Response:
        emit("first")  # type: ignore[operator]
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        raise AssertionError("not reached")

    stream = LLM_Stream(None, run)  # type: ignore[arg-type]
    pieces = stream.__aiter__()
    assert await pieces.__anext__() == "first"
    await pieces.aclose()  # type: ignore[attr-defined]
    assert cancelled.is_set()
    with pytest.raises(RuntimeError, match="has not ended"):
        _ = stream.response
