"""File names that say whether an export directory is finished.

``manifest.json`` is written last into every export and is its completion marker;
``.od-export-incomplete`` is written first into a remote target while it is being
published and removed last (see :mod:`od_export.storage.remote`).
"""
MANIFEST_NAME = "manifest.json"
INCOMPLETE_MARKER = ".od-export-incomplete"
