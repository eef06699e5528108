"""Many exports from one request: YAML batches, every checkpoint of a run, shards.

:mod:`.jobs` turns a batch file into :class:`~od_export.options.ExportOptions`, one per
export (the same dataclass the CLI builds); :mod:`.batch` runs them, reusing each
built model, skipping what is up to date, and collecting one result per export.
"""
