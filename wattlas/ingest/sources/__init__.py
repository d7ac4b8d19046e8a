"""One module per public source family.

A source module declares ``SOURCES`` (registry entries, plain data) and implements
``accepts(source_id, path) -> bool`` (does a file in a ``--from`` directory belong to it)
and ``convert(source_id, path, out_dir) -> dict[table, list[parquet path]]``, a pure
per-file task: one raw file in, Parquet parts out, no store access.
"""
