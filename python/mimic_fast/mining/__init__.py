"""Mining multi-view pairs (the MIMIC method): sources -> views (SIFT once per frame) ->
candidate pairs -> ratio-test matches -> RANSAC homography -> patch overlap -> shards.

Modules: ``config`` (MineConfig, RunOptions), ``views`` (decode + resize + SIFT per frame),
``samplers`` (ordered / group / list candidates), ``evaluate`` (per-pair verdicts, one
patch_overlap call per batch), ``sample`` (an accepted pair -> its sample; the format and
its writer are :mod:`mimic_fast.dataset`), ``worker`` (the per-source unit of work),
``engines`` (serial, process pool, Ray), ``run`` (``mine``: resumable orchestration),
``synthetic`` (generated camera paths), ``commands`` (the CLI).
"""
