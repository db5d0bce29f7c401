"""lazarus_bench: tests for hypotheses about what happens inside language models (MLX core)."""

from . import blas as _blas

_blas.preload()

__version__ = "0.1.0"
