"""Generation: sampling settings, the batched KV-cache decoder, streaming, and CPU inference precision/int8."""

from rapgpt.generate.decoder import BatchDecoder, Completion, Event, generate, stream
from rapgpt.generate.sampling import SamplingParams

__all__ = ["BatchDecoder", "Completion", "Event", "SamplingParams", "generate", "stream"]
