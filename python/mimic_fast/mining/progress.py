"""The mining progress bar: candidates evaluated (with tqdm's rate and ETA), not sources, so
one long video or one big group shows movement; sources done and pairs kept beside it."""

from __future__ import annotations


class Progress:
    """Counts candidates (``advance``) against an estimated total (``add_total`` when work is
    added: a source mined again whole), and sources; drawn by tqdm when ``enabled``."""

    def __init__(self, total: int, done: int, sources: int, sources_done: int,
                 enabled: bool = True):
        self.total, self.done = total, done
        self.sources, self.sources_done = sources, sources_done
        self.pairs = 0
        self._bar = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=done, unit="cand",
                             desc="mining", dynamic_ncols=True, smoothing=0.1)
            self._postfix()

    def advance(self, n: int) -> None:
        """n more candidates evaluated (negative: taken back, as when a unit whose worker
        died is run again)."""
        if n == 0:
            return
        self.done += n
        if self._bar is not None:
            self._bar.update(n)

    def add_total(self, n: int) -> None:
        self.total += n
        if self._bar is not None:
            self._bar.total = self.total
            self._bar.refresh()

    def source_done(self, pairs: int) -> None:
        self.sources_done += 1
        self.pairs = pairs
        if self._bar is not None:
            self._postfix()

    def _postfix(self) -> None:
        self._bar.set_postfix_str(f"sources {self.sources_done}/{self.sources}, "
                                  f"pairs {self.pairs}", refresh=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
