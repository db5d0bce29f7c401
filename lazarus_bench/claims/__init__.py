"""The claims: one module per claim (``hNN_*.py``), each registering itself with ``@claim``.

This folder holds only claim files. The framework they share (Claim, controls, the lock, shared training runs) is
``lazarus_bench.harness``, which loads these modules by name.
"""
