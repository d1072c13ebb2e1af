import math

import pytest

from rapgpt.errors import ConfigError
from rapgpt.generate.params import SamplingParams


@pytest.mark.parametrize(
    "field, value",
    [
        ("temperature", -0.1), ("temperature", math.nan), ("top_p", 0.0), ("top_p", 1.5), ("top_k", 0),
        ("top_k", 2.5), ("min_p", 1.5), ("min_p", -0.1), ("repetition_penalty", 0.0), ("frequency_penalty", 3.0),
        ("presence_penalty", -2.5), ("max_new_tokens", 0), ("max_new_tokens", True), ("stop", ("",)), ("seed", -1),
    ],
)
def test_nonsensical_options_are_rejected_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=rf"^{field} must be"):
        SamplingParams(**{field: value})


def test_stop_accepts_a_single_string_or_a_list():
    assert SamplingParams(stop="\n\n").stop == ("\n\n",)
    assert SamplingParams(stop=["a", "b"]).stop == ("a", "b")
