"""Loggers: TensorBoard, JSON lines and the terminal, behind one small protocol.

Scalar tags are namespaced: ``train/``, ``eval/``, ``explore/``, ``replay/``, ``perf/``.
Every point is keyed by ``env_steps``.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import IO, Any

from rlkit.types import Logger

__all__ = [
    "JSONLLogger",
    "Logger",
    "MultiLogger",
    "ProgressLogger",
    "SupportClipWatch",
    "TensorBoardLogger",
    "TerminalProgress",
]


class JSONLLogger:
    """One JSON object per logged point: ``{"env_steps": ..., "<tag>": value, ...}``.

    Values are JSON numbers; NaN and +-Inf (which JSON cannot hold) are written as
    ``null``, so every line is strict JSON."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "a", buffering=1)

    def log(self, env_steps: int, scalars: dict[str, float]) -> None:
        record = {"env_steps": env_steps}
        record.update({k: (float(v) if math.isfinite(v) else None) for k, v in scalars.items()})
        self._file.write(json.dumps(record, allow_nan=False) + "\n")

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class TensorBoardLogger:
    """Scalars in TensorBoard event files, plus hyperparameters for the HParams tab."""

    def __init__(self, log_dir: Path, purge_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)

    def log_hparams(
        self, hparams: dict[str, Any], metrics: dict[str, float], env_steps: int = 0
    ) -> None:
        """Write the HParams-plugin summaries into this run (not a sub-run), and the
        metric values as scalars so that the HParams table shows them."""
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        clean = {
            k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in hparams.items()
        }
        exp, ssi, sei = hparams_summary(clean, metrics)
        file_writer = self.writer._get_file_writer()
        for summary in (exp, ssi, sei):
            file_writer.add_summary(summary)
        for tag, value in metrics.items():
            self.writer.add_scalar(tag, value, env_steps)

    def log(self, env_steps: int, scalars: dict[str, float]) -> None:
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, env_steps)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def fmt_duration(seconds: float) -> str:
    """``mm:ss`` or ``h:mm:ss``; ``?`` for an unknown duration."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class TerminalProgress:
    """A bar redrawn in place on a TTY (at most 5 times a second); otherwise a plain line
    every ``every_frac`` of ``total``. Subclasses say what the line holds."""

    def __init__(self, total: int, stream: IO[str] | None = None, every_frac: float = 0.05):
        self.total = max(int(total), 1)
        self.stream = stream if stream is not None else sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self._line_every = max(1, int(self.total * every_frac))
        self._next_line = self._line_every
        self._last_draw = 0.0

    def draw(self, done: int, text: str, force: bool = False) -> None:
        """Show ``text`` for progress ``done`` out of ``total``."""
        if self.tty:
            now = time.perf_counter()
            if force or now - self._last_draw > 0.2:
                width = 30
                filled = int(width * min(done / self.total, 1.0))
                bar = "#" * filled + "." * (width - filled)
                self.stream.write(f"\r[{bar}] {text}\x1b[K")
                self.stream.flush()
                self._last_draw = now
        elif force or done >= self._next_line:
            self.stream.write(text + "\n")
            self.stream.flush()
            while self._next_line <= done:
                self._next_line += self._line_every

    def message(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K")
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


class SupportClipWatch:
    """One warning when ``train/support_clip_frac`` (the share of C51 target mass that
    fell outside [v_min, v_max]) averages above ``threshold`` over the last ``points``
    logged training points: the support is too narrow for the returns."""

    TAG = "train/support_clip_frac"

    def __init__(self, threshold: float = 0.2, points: int = 5) -> None:
        self.threshold, self.points = threshold, points
        self.recent: list[float] = []
        self.warned = False

    def observe(self, scalars: dict[str, float]) -> str | None:
        """The warning, the first time the running mean is high; else None."""
        if self.warned or self.TAG not in scalars:
            return None
        self.recent = [*self.recent, scalars[self.TAG]][-self.points :]
        mean = sum(self.recent) / len(self.recent)
        if len(self.recent) < self.points or mean <= self.threshold:
            return None
        self.warned = True
        return (
            f"warning: {mean:.0%} of the C51 target mass fell outside the support over the "
            f"last {self.points} training points (train/support_clip_frac): returns do not "
            "fit in [network.v_min, network.v_max]; widen them, or set both to auto"
        )


class ProgressLogger(TerminalProgress):
    """Training progress: env steps, steps/s, the last train and eval returns, the ETA."""

    def __init__(self, total_steps: int, stream: IO[str] | None = None, every_frac: float = 0.05):
        super().__init__(total_steps, stream, every_frac)
        self.start_steps = 0
        self.last_eval: float | None = None
        self.last_return: float | None = None
        self._printed_at: int | None = None  # env steps of the last plain line printed
        self.support_clip = SupportClipWatch()

    def begin(self, env_steps: int) -> None:
        self.start = time.perf_counter()
        self.start_steps = env_steps
        self._next_line = env_steps + self._line_every

    def _line(self, env_steps: int) -> str:
        elapsed = time.perf_counter() - self.start
        sps = (env_steps - self.start_steps) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - env_steps) / sps if sps > 0 else float("inf")
        pct = 100.0 * env_steps / self.total
        ev = "-" if self.last_eval is None else f"{self.last_eval:.1f}"
        ret = "-" if self.last_return is None else f"{self.last_return:.1f}"
        return (
            f"{pct:5.1f}% | {env_steps}/{self.total} env steps | {sps:,.0f} steps/s | "
            f"train return {ret} | eval return {ev} | ETA {fmt_duration(eta)}"
        )

    def update(self, env_steps: int, force: bool = False) -> None:
        """Show progress at ``env_steps``: redrawn on a TTY, else a plain line every
        ``every_frac``; ``force`` shows it now unless a plain line for this very step
        was just printed (so the final ``100.0%`` line appears once)."""
        if self.tty:
            self.draw(env_steps, self._line(env_steps), force)
        elif (force or env_steps >= self._next_line) and env_steps != self._printed_at:
            self._printed_at = env_steps
            self.draw(env_steps, self._line(env_steps), force=True)

    def log(self, env_steps: int, scalars: dict[str, float]) -> None:
        if "eval/return_mean" in scalars:
            self.last_eval = scalars["eval/return_mean"]
        if "train/episode_return" in scalars:
            self.last_return = scalars["train/episode_return"]
        warning = self.support_clip.observe(scalars)
        if warning is not None:
            self.message(warning)


class MultiLogger:
    """Fans every point out to several loggers."""

    def __init__(self, *loggers: Logger) -> None:
        self.loggers = loggers

    def log(self, env_steps: int, scalars: dict[str, float]) -> None:
        for logger in self.loggers:
            logger.log(env_steps, scalars)

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()
