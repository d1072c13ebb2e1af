import argparse
from dataclasses import dataclass

import pytest

from rapgpt.errors import ConfigError
from rapgpt.options import add_flags, flags_given, read_toml, resolve, setting


@dataclass(frozen=True)
class Settings:
    steps: int = setting(10, "how many steps")
    rate: float = setting(0.5, "a rate")
    limit: int | None = setting(None, "an optional limit")
    fast: bool = setting(False, "go fast")
    mode: str = setting("a", "a mode", choices=("a", "b"))


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_flags(parser, Settings)
    return parser.parse_args(argv)


def test_flags_are_generated_from_fields_and_only_given_ones_are_reported():
    args = parse("--steps", "3", "--no-fast", "--limit", "7")
    assert flags_given(args, Settings) == {"steps": 3, "fast": False, "limit": 7}
    assert flags_given(parse(), Settings) == {}
    with pytest.raises(SystemExit):
        parse("--mode", "c")


def test_flag_help_shows_the_field_help_and_default():
    parser = argparse.ArgumentParser()
    add_flags(parser, Settings)
    text = parser.format_help()
    assert "--steps N" in text and "how many steps (default: 10)" in text
    assert "--fast, --no-fast" in text


def test_layers_override_defaults_in_order(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text('steps = 20\nrate = 1\nmode = "b"\n')
    config = resolve(Settings, read_toml(toml), {"steps": 30})
    assert config == Settings(steps=30, rate=1.0, limit=None, fast=False, mode="b")
    assert isinstance(config.rate, float)


def test_unknown_names_wrong_types_and_bad_choices_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="s.toml: unknown setting.*stepz.*known ones are steps"):
        resolve(Settings, {"stepz": 1}, where=("s.toml",))
    with pytest.raises(ConfigError, match="steps must be int"):
        resolve(Settings, {"steps": "many"})
    with pytest.raises(ConfigError, match="steps must be int"):
        resolve(Settings, {"steps": 2.5})
    with pytest.raises(ConfigError, match="mode must be one of a, b"):
        resolve(Settings, {"mode": "c"})
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_toml(bad)
    with pytest.raises(ConfigError, match="not found"):
        read_toml(tmp_path / "missing.toml")
