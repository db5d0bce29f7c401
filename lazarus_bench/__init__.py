"""lazarus_bench: tests for hypotheses about what happens inside language models (MLX core)."""

from . import blas as _blas
from . import jit as _jit

_blas.preload()
_jit.configure()

__version__ = "0.1.0"
