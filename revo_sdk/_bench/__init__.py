"""``revo-sdk bench``: a local upstream emulator and the benchmark that drives it.

:func:`~revo_sdk._bench.runner.run_bench` is what the CLI command calls;
:mod:`revo_sdk._bench.emulator` runs on its own as
``python -m revo_sdk._bench.emulator``. Neither is part of the public API.
"""
