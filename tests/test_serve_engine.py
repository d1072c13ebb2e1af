"""The serving engine: continuous batching that gives each request exactly what it would get alone, joining and
leaving at token boundaries, cancellation, the queue limit, the time limit, loading and failures."""

from __future__ import annotations

import asyncio
import threading

import pytest
from serve_support import TOKENIZER, collect, reference, running_engine, tiny_model

from rapgpt.errors import ConfigError, TokenizerError
from rapgpt.generate import SamplingParams
from rapgpt.serve.config import ServeConfig
from rapgpt.serve.engine import Chunk, Finished, QueueFull, QueueTimeout, ServedModel, Sink, Unavailable


@pytest.fixture(scope="module")
def base() -> ServedModel:
    return ServedModel("base", tiny_model(0), TOKENIZER)


@pytest.fixture(scope="module")
def other() -> ServedModel:
    return ServedModel("other", tiny_model(1), TOKENIZER, parent="base")


def test_concurrent_requests_match_each_request_generated_alone(base):
    requests = [
        ("the night ", SamplingParams(max_new_tokens=12, seed=1)),
        ("", SamplingParams(max_new_tokens=20, temperature=1.2, top_k=5, seed=2)),
        ("a", SamplingParams(max_new_tokens=7, temperature=0)),
        ("rhymes and ", SamplingParams(max_new_tokens=15, top_p=0.5, min_p=0.1, frequency_penalty=1.0, seed=3)),
        ("the night ", SamplingParams(max_new_tokens=12, seed=4, stop=("e",))),
    ]

    async def run_all():
        with running_engine([base], max_batch=3) as engine:  # fewer slots than requests: some queue
            return await asyncio.gather(*(collect(engine, p, params, "base") for p, params in requests))

    for (prompt, params), (pieces, result) in zip(requests, asyncio.run(run_all()), strict=True):
        expected = reference(base.model, prompt, params)
        assert result.text == expected.text == "".join(pieces)
        assert result.completion_tokens == expected.completion_tokens
        assert result.finish_reason == expected.finish_reason
        assert result.prompt_tokens == len(prompt) + 1  # the start-of-song token, then one id per character


def test_a_request_joins_a_running_batch_and_leaves_before_a_longer_one():
    served = ServedModel("base", tiny_model(0), TOKENIZER)

    async def run():
        with running_engine([served], max_batch=4) as engine:
            order: list[str] = []
            long_sink, short_sink = Sink(), Sink()
            engine.submit("long ", SamplingParams(max_new_tokens=200, seed=1), "base", long_sink)
            for _ in range(3):  # the long request is running
                assert isinstance(await asyncio.wait_for(long_sink.get(), 30), Chunk)
            engine.submit("short ", SamplingParams(max_new_tokens=5, seed=2), "base", short_sink)

            async def follow(name: str, sink: Sink):
                while not isinstance(await asyncio.wait_for(sink.get(), 60), Finished):
                    pass
                order.append(name)

            await asyncio.gather(follow("long", long_sink), follow("short", short_sink))
            return order

    assert asyncio.run(run()) == ["short", "long"]


def test_requests_for_different_models_get_their_own_weights(base, other):
    params = SamplingParams(max_new_tokens=16, seed=7)

    async def run():
        with running_engine([base, other], max_batch=2) as engine:
            return await asyncio.gather(collect(engine, "yo ", params, "base"), collect(engine, "yo ", params, "other"),
                                        collect(engine, "yo ", params, "other"))

    (_, on_base), (_, on_other), (_, again) = asyncio.run(run())
    assert on_base.text == reference(base.model, "yo ", params).text
    assert on_other.text == again.text == reference(other.model, "yo ", params).text
    assert on_base.text != on_other.text


def test_cancel_stops_a_running_request_at_the_next_token(base):
    async def run():
        with running_engine([base]) as engine:
            sink = Sink()
            ticket = engine.submit("", SamplingParams(max_new_tokens=500), "base", sink)
            assert isinstance(await asyncio.wait_for(sink.get(), 30), Chunk)
            engine.cancel(ticket)
            while not isinstance(message := await asyncio.wait_for(sink.get(), 30), Finished):
                pass
            await asyncio.sleep(0.05)
            return message.result, engine

    result, engine = asyncio.run(run())
    assert result.finish_reason == "cancelled"
    assert 1 <= result.completion_tokens < 500
    assert engine.metrics.batch_size._value.get() == 0


def test_full_queue_refuses_with_429_and_a_retry_delay(base):
    async def run():
        with running_engine([base], max_batch=1, max_queue=1) as engine:
            running, queued = Sink(), Sink()
            first = engine.submit("", SamplingParams(max_new_tokens=500), "base", running)
            assert isinstance(await asyncio.wait_for(running.get(), 30), Chunk)  # admitted: the queue is empty
            second = engine.submit("", SamplingParams(max_new_tokens=5), "base", queued)  # waits: batch is full
            with pytest.raises(QueueFull) as refused:
                engine.submit("", SamplingParams(max_new_tokens=5), "base", Sink())
            engine.cancel(first)
            while not isinstance(await asyncio.wait_for(queued.get(), 30), Finished):
                pass  # the queued request gets the freed slot
            assert second.done
            return refused.value

    error = asyncio.run(run())
    assert error.status == 429 and error.retry_after >= 1


def test_time_limit_stops_a_running_request_and_fails_a_queued_one(base):
    async def run():
        with running_engine([base], max_batch=1, time_limit=0.5) as engine:
            running, queued = Sink(), Sink()
            engine.submit("", SamplingParams(max_new_tokens=100_000), "base", running)
            engine.submit("", SamplingParams(max_new_tokens=5), "base", queued)
            while not isinstance(message := await asyncio.wait_for(running.get(), 30), Finished):
                pass
            return message.result, await asyncio.wait_for(queued.get(), 30)

    result, queued_message = asyncio.run(run())
    assert result.finish_reason == "time_limit"
    assert result.completion_tokens > 0 and 0.5 <= result.total < 10
    assert isinstance(queued_message.error, QueueTimeout) and queued_message.error.status == 503


def test_requests_are_refused_with_503_while_loading_and_served_once_loaded(base):
    loaded = threading.Event()

    def slow_load():
        loaded.wait(30)
        return [base]

    async def run():
        with running_engine(slow_load, wait=False) as engine:
            with pytest.raises(Unavailable) as refused:
                engine.submit("", SamplingParams(max_new_tokens=2), "base", Sink())
            assert engine.state == "loading"
            loaded.set()
            assert engine.wait_ready(30)
            _, result = await collect(engine, "", SamplingParams(max_new_tokens=2, seed=0), "base")
            return refused.value, result

    error, result = asyncio.run(run())
    assert error.status == 503 and "loading" in str(error)
    assert result.completion_tokens == 2


def test_a_failed_load_is_reported_and_refuses_requests():
    def broken():
        raise ConfigError("run directory not found: nowhere")

    failures = []
    from rapgpt.serve.engine import Engine

    engine = Engine(broken, on_failure=failures.append).start()
    assert not engine.wait_ready(30)
    assert engine.state == "failed" and "nowhere" in str(engine.error) and failures == [engine.error]
    with pytest.raises(Unavailable, match="failed to load"):
        asyncio.run(_submit(engine))
    engine.stop()


async def _submit(engine):
    engine.submit("", SamplingParams(), "base", Sink())


def test_unreadable_prompt_and_unknown_model_are_refused_at_submit(base):
    async def run():
        with running_engine([base]) as engine:
            with pytest.raises(TokenizerError, match="'Q'"):
                engine.submit("Q", SamplingParams(), "base", Sink())
            with pytest.raises(ConfigError, match="unknown model 'nope'"):
                engine.submit("", SamplingParams(), "nope", Sink())

    asyncio.run(run())


def test_a_decoding_failure_fails_its_requests_and_the_engine_keeps_serving(base, monkeypatch):
    async def run():
        with running_engine([base]) as engine:
            decoder = engine._decoders["base"]
            monkeypatch.setattr(decoder, "step", lambda: 1 / 0)
            sink = Sink()
            engine.submit("", SamplingParams(max_new_tokens=3), "base", sink)
            failed = await asyncio.wait_for(sink.get(), 30)
            _, result = await collect(engine, "", SamplingParams(max_new_tokens=3, seed=0), "base")
            return failed, result

    failed, result = asyncio.run(run())
    assert isinstance(failed.error, ZeroDivisionError)
    assert result.completion_tokens == 3


def test_settings_out_of_range_are_refused():
    with pytest.raises(ConfigError, match="max_batch"):
        ServeConfig(max_batch=0)
    with pytest.raises(ConfigError, match="max_queue"):
        ServeConfig(max_queue=0)
    with pytest.raises(ConfigError, match="time limit"):
        ServeConfig(time_limit=0)


def test_a_sink_joins_the_waiting_pieces_of_each_request_in_order():
    done = Finished(0, None)

    async def run():
        sink = Sink()
        for message in (Chunk(0, "a"), Chunk(1, "x"), Chunk(0, "b"), done, Chunk(1, "y")):
            sink.queue.put_nowait(message)
        first = await sink.get_many()
        sink.queue.put_nowait(Chunk(1, "z"))
        return first, await sink.get_many()

    first, second = asyncio.run(run())
    assert first == [Chunk(0, "ab"), Chunk(1, "xy"), done]
    assert second == [Chunk(1, "z")]


def test_streamed_text_is_gathered_for_the_stream_interval_but_the_first_text_and_the_end_go_at_once(base):
    params = SamplingParams(max_new_tokens=30, seed=5)

    async def run(interval: float) -> list[list]:
        """The batches of messages the event loop is woken with (as the API's stream reads them)."""
        with running_engine([base], stream_interval=interval) as engine:
            sink = Sink()
            engine.submit("the night ", params, "base", sink)
            batches = [await asyncio.wait_for(sink.get_many(), 30)]
            while not isinstance(batches[-1][-1], Finished):
                batches.append(await asyncio.wait_for(sink.get_many(), 30))
            return batches

    expected = reference(base.model, "the night ", params).text
    for interval in (0.0, 60.0):
        batches = asyncio.run(run(interval))
        assert "".join(m.text for batch in batches for m in batch if isinstance(m, Chunk)) == expected
    # Held for a minute: the first character at once, then the rest of the text with the end.
    first, rest = batches
    assert first == [Chunk(0, expected[0])] and rest[0] == Chunk(0, expected[1:]) and len(rest) == 2


def test_a_negative_stream_interval_is_refused():
    with pytest.raises(ConfigError, match="the stream interval"):
        ServeConfig(stream_interval=-1)
