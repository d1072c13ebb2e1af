"""Generation: sampling settings, the batched KV-cache decoder, streaming, and CPU inference (precision, int8).

    from rapgpt.generate import SamplingParams, generate, load_for_inference, stream
    from rapgpt.generate import WritingParams, write   # rhyme schemes, candidate lines, the lexicon

Names are imported on first use, so that reading the sampling defaults (as `rapgpt --help` does) stays fast.
"""

import importlib

from rapgpt.generate.params import SamplingParams, WritingParams

_MODULE_OF = {
    "BatchDecoder": "decoder",
    "Completion": "decoder",
    "Event": "decoder",
    "generate": "decoder",
    "stream": "decoder",
    "load_for_inference": "inference",
    "write": "scheme",
}

__all__ = ["BatchDecoder", "Completion", "Event", "SamplingParams", "WritingParams", "generate", "load_for_inference",
           "stream", "write"]


def __getattr__(name: str):
    if name in _MODULE_OF:
        return getattr(importlib.import_module(f"rapgpt.generate.{_MODULE_OF[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
