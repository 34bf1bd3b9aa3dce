"""Provider usage -> event fields: the mapping the wrappers (and later the gateway) share. Pure, no server."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from tokenledger.usage_mapping import AnthropicStreamUsage, anthropic_usage, usage_from_response


def test_openai_chat_usage_keeps_cached_and_reasoning_as_parts():
    response = {
        "object": "chat.completion", "model": "gpt-4o-mini-2024-07-18", "id": "chatcmpl-1", "service_tier": "flex",
        "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "prompt_tokens_details": {"cached_tokens": 1000},
                  "completion_tokens_details": {"reasoning_tokens": 100}},
    }  # fmt: skip
    metered = usage_from_response(response)
    assert metered.event_fields() == {
        "input_tokens": 1200, "output_tokens": 300, "cached_input_tokens": 1000, "reasoning_tokens": 100,
        "service_tier": "flex", "provider_request_id": "chatcmpl-1",
    }  # fmt: skip
    assert metered.model == "gpt-4o-mini-2024-07-18"


def test_openai_responses_usage():
    response = {
        "object": "response", "model": "o4-mini", "usage": {
            "input_tokens": 800, "input_tokens_details": {"cached_tokens": 200}, "output_tokens": 250,
            "output_tokens_details": {"reasoning_tokens": 50}},
    }  # fmt: skip
    fields = usage_from_response(response).event_fields()
    assert (fields["input_tokens"], fields["cached_input_tokens"], fields["output_tokens"]) == (800, 200, 250)
    assert fields["reasoning_tokens"] == 50


def test_anthropic_input_counts_cache_reads_and_writes():
    fields = anthropic_usage(
        {"input_tokens": 100, "cache_read_input_tokens": 2000, "cache_creation_input_tokens": 500,
         "cache_creation": {"ephemeral_5m_input_tokens": 300, "ephemeral_1h_input_tokens": 200},
         "output_tokens": 400, "service_tier": "priority"}
    ).event_fields()  # fmt: skip
    assert fields == {
        "input_tokens": 2600, "output_tokens": 400, "cached_input_tokens": 2000, "cache_write_input_tokens": 300,
        "cache_write_1h_input_tokens": 200, "service_tier": "priority",
    }  # fmt: skip


def test_anthropic_writes_without_a_split_are_five_minute_writes():
    fields = anthropic_usage({"input_tokens": 10, "cache_creation_input_tokens": 90, "output_tokens": 5}).event_fields()
    assert (fields["input_tokens"], fields["cache_write_input_tokens"]) == (100, 90)
    assert "cache_write_1h_input_tokens" not in fields


def test_anthropic_stream_takes_the_latest_counts():
    usage = AnthropicStreamUsage()
    usage.feed({"type": "message_start", "message": {"id": "msg_1", "model": "claude-3-5-haiku-20241022",
                                                     "usage": {"input_tokens": 30, "output_tokens": 1}}})  # fmt: skip
    usage.feed({"type": "content_block_delta", "delta": {"text": "hi"}})
    usage.feed({"type": "message_delta", "usage": {"output_tokens": 77}})
    metered = usage.usage()
    assert (metered.input_tokens, metered.output_tokens, metered.model) == (30, 77, "claude-3-5-haiku-20241022")


counts = st.integers(min_value=0, max_value=10**7)


@given(uncached=counts, read=counts, five=counts, hour=counts, out=counts)
def test_anthropic_parts_never_exceed_the_input(uncached, read, five, hour, out):
    fields = anthropic_usage(
        {"input_tokens": uncached, "cache_read_input_tokens": read, "cache_creation_input_tokens": five + hour,
         "cache_creation": {"ephemeral_5m_input_tokens": five, "ephemeral_1h_input_tokens": hour},
         "output_tokens": out}
    ).event_fields()  # fmt: skip
    parts = sum(fields.get(k, 0) for k in ("cached_input_tokens", "cache_write_input_tokens",
                                           "cache_write_1h_input_tokens"))  # fmt: skip
    assert parts <= fields["input_tokens"] == uncached + read + five + hour
    assert fields["output_tokens"] == out


def test_an_anthropic_stream_broken_off_while_thinking_is_charged_for_its_thinking():
    """message_start counts the input and one output token; 400 characters of thinking and 40 of text follow, then
    the stream breaks before message_delta: the event has the input as counted and 110 output tokens (440
    characters at 4 a token), marked as an estimate."""
    from types import SimpleNamespace as Event

    from tokenledger._wrapping import Plan, stream_outcome
    from tokenledger.anthropic_wrapper import MessageStreamMeter

    meter = MessageStreamMeter()
    start = {"type": "message_start", "message": {"id": "msg_1", "model": "claude-sonnet-4-5",
                                                  "usage": {"input_tokens": 900, "output_tokens": 1}}}  # fmt: skip
    meter.feed(start)
    meter.feed(Event(type="content_block_delta", delta=Event(type="thinking_delta", thinking="t" * 400)))
    meter.feed(Event(type="content_block_delta", delta=Event(type="text_delta", text="x" * 40)))
    plan = Plan(request_id="r1", model="claude-sonnet-4-5", input_tokens=50, max_output_tokens=4000,
                operation_type=None, features=None)  # fmt: skip

    event = stream_outcome(plan, meter, provider_request_id=None)
    assert event is not None
    assert (event["input_tokens"], event["output_tokens"]) == (900, 110)
    assert event["metadata"]["tokenledger_usage_estimated"] is True
