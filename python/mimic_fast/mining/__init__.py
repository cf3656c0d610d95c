"""Mining multi-view pairs (the MIMIC method): sources -> views (SIFT once per frame) ->
candidate pairs -> ratio-test matches -> RANSAC homography -> patch overlap -> shards.

Modules: ``config`` (MineConfig, RunOptions), ``views`` (decode + resize + SIFT per frame),
``samplers`` (ordered / group / list candidates), ``evaluate`` (per-pair verdicts, one
patch_overlap call per batch), ``sample`` and ``writer`` (the dataset format: see
:mod:`mimic_fast.mining.writer`), ``worker`` (the per-source unit of work), ``engines``
(serial, process pool, Ray), ``run`` (``mine``: resumable orchestration), ``dataset``
(reading back), ``mimic_format`` (published layout export/import), ``synthetic`` (generated
camera paths), ``commands`` (the CLI).
"""
