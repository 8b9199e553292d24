"""A call's site (who it goes to, how it is priced and named) is made once per instance and model,
and made again when what it was made from changes."""

from __future__ import annotations

from test_telemetry_support import (  # noqa: F401 - fixtures
    Captured,
    call,
    captured_fixture,
    prices_fixture,
    scripted_api,
)

from statek.settings import ProviderSettings


def _span_attributes(captured: Captured) -> dict[str, object]:
    spans = captured.finished()
    assert spans, "the call made no span"
    return dict(spans[-1].attributes or {})


async def test_one_site_per_instance_and_model(captured: Captured) -> None:
    api = scripted_api()
    await call(api, "in=10 out=2", model="priced")
    await call(api, "in=11 out=2", model="priced")
    await call(api, "in=12 out=2", model="other")
    sites = api._call_sites
    assert sites is not None and set(sites) == {"priced", "other"}
    assert sites["priced"].request_model == "priced" and sites["other"].request_model == "other"
    names = [span.name for span in captured.finished()]
    assert names == ["chat priced", "chat priced", "chat other"]


async def test_replaced_settings_change_the_server_of_later_calls(captured: Captured) -> None:
    api = scripted_api()
    await call(api, "in=10 out=2")
    first = _span_attributes(captured)
    transport = api._clients.get()
    api.settings = ProviderSettings(api_url="http://127.0.0.1:8123/other")
    assert api._clients.get() is transport
    await call(api, "in=10 out=2")
    second = _span_attributes(captured)
    assert first.get("server.port") != 8123
    assert second["server.address"] == "127.0.0.1" and second["server.port"] == 8123


async def test_a_changed_provider_key_or_streaming_flag_makes_a_new_site(captured: Captured) -> None:
    api = scripted_api()
    await call(api, "in=10 out=2")
    before = api._call_sites["priced"]
    api.provider_key = "RENAMED"
    await call(api, "in=10 out=2")
    renamed = api._call_sites["priced"]
    assert renamed is not before and renamed.provider_key == "RENAMED"
    api.stream = True  # type: ignore[attr-defined]  # a flag the metering path reads when present
    await call(api, "in=10 out=2")
    streamed = api._call_sites["priced"]
    assert streamed is not renamed and streamed.stream is True
    assert _span_attributes(captured)["gen_ai.request.stream"] is True
    assert api._call_sites["priced"] is streamed  # and kept while nothing changes
    await call(api, "in=10 out=2")
    assert api._call_sites["priced"] is streamed


async def test_records_read_their_site_through(captured: Captured) -> None:
    from statek.call_record import CallRecord, add_call_consumer, remove_call_consumer

    seen: list[CallRecord] = []

    class Keep:
        name = "keep"

        def start(self, record: CallRecord) -> None:
            pass

        def finish(self, record: CallRecord) -> None:
            seen.append(record)

    keep = Keep()
    add_call_consumer(keep)
    try:
        await call(scripted_api(), "in=10 out=2")
    finally:
        remove_call_consumer(keep)
    (record,) = seen
    site = record.site
    assert (record.provider_key, record.genai_provider, record.request_model, record.operation) == (
        "SCRIPTED",
        "scripted",
        "priced",
        "chat",
    )
    assert record.pricing_provider == site.pricing_provider == "SCRIPTED"
    assert record.capture_context is True and record.stream is False
    assert record.output_type == "text" and record.server_address == site.server_address
