"""The one error type that the CLI turns into a single clear line and a non-zero exit."""


class LazarusError(Exception):
    """A user-facing problem (bad model path, unknown word, out-of-range layer, ...)."""
