"""THE on-disk pair format, its only owner (see :mod:`mimic_fast.dataset.schema`).

``schema`` (names, version, keys, sample metadata, manifest, index row, integrity record),
``writer`` (shard writer, atomic files, index and summary), ``reader`` (the one tar scanner,
samples, the streaming reader, integrity records), ``verify`` (check a whole dataset),
``pack`` (re-shard a dataset), ``mimic_layout`` (the published MIMIC layout: import, export),
``paths`` (what kind of data path something is), ``errors``.
"""
