"""rapgpt: from a pile of song lyrics to a lyric-writing GPT you can talk to in a browser."""

__version__ = "0.1.0"
