"""Errors that the CLI turns into one clear line for the user.

Anything raised as a `RapgptError` is a problem with the user's input or environment and carries a message that
names the problem and the fix. Any other exception is a bug and keeps its stack trace.
"""


class RapgptError(Exception):
    """Base class: a user-facing error with a message that says what to do."""


class DataError(RapgptError):
    """A corpus, a dataset directory or a record in it is missing, malformed or empty."""


class TokenizerError(RapgptError):
    """Text cannot be encoded, or a tokenizer file cannot be read."""


class CheckpointError(RapgptError):
    """A run directory or checkpoint is missing, corrupt or does not match what it is loaded into."""


class ConfigError(RapgptError):
    """An option or configuration value is out of range or inconsistent."""


class NetworkError(RapgptError):
    """A remote service cannot be reached, or keeps failing, after the retries."""
