"""Videos of greedy episodes: ``rlkit eval --video`` and ``eval.video_every``.

Frames are ``render()`` of one env made with the run's env settings and
``render_mode="rgb_array"`` (``rlkit.envs.builder.make_render_env``), [H, W, 3] uint8:
the full game screen for Atari, not the agent's 84x84 input. The episodes run through
the same ``evaluate`` loop as every evaluation, in that one env, so a video shows the
episodes whose returns are reported.

Files are MP4 (imageio with imageio-ffmpeg) or, without ffmpeg, GIF; both need the
``video`` extra (``pip install 'rlkit[video]'``). ``eval.video_every`` writes
``videos/step-<env steps>.<ext>`` into the run dir and logs the episode to TensorBoard:
as a video (``SummaryWriter.add_video``) when moviepy, which TensorBoard's encoder needs,
is installed, otherwise as a text entry ``eval/video`` naming the file.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from rlkit.agent.policy import EpsilonGreedy
from rlkit.build import build_policy
from rlkit.config import Config, ConfigError
from rlkit.envs import GymnasiumVecEnv
from rlkit.envs.builder import make_render_env
from rlkit.loops.evaluate import EvalResult, evaluate

INSTALL_HINT = "pip install 'rlkit[video]'"
VIDEO_SUFFIXES = (".mp4", ".gif")
VIDEO_SEED_OFFSET = 2_000_003  # env seeds of eval.video_every episodes: trainer.seed + this


class VideoUnavailable(ConfigError):
    """Writing a video needs a package that is not installed (one-line message)."""


def require_imageio(purpose: str = "writing videos") -> Any:
    """The imageio module, or VideoUnavailable naming the extra to install."""
    try:
        import imageio
    except ImportError as exc:
        raise VideoUnavailable(f"{purpose} needs imageio: {INSTALL_HINT}") from exc
    return imageio


def has_ffmpeg() -> bool:
    """Whether imageio can write MP4 (imageio-ffmpeg with its ffmpeg binary)."""
    try:
        import imageio_ffmpeg

        imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return False
    return True


def video_path(path: Path) -> Path:
    """``path`` with the suffix that will be written: GIF for ``.gif`` or when there is
    no ffmpeg, MP4 otherwise."""
    path = Path(path)
    if path.suffix.lower() == ".gif" or not has_ffmpeg():
        return path.with_suffix(".gif")
    return path.with_suffix(".mp4")


class VideoWriter:
    """Frames appended one at a time to an MP4 or GIF file (``video_path`` picks which)."""

    def __init__(self, path: Path, fps: float) -> None:
        imageio = require_imageio()
        self.path = video_path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.frames = 0
        if self.path.suffix == ".gif":
            self._writer = imageio.get_writer(self.path, duration=1000.0 / fps, loop=0)
        else:  # even sizes for yuv420p, with no resizing of the usual screens
            self._writer = imageio.get_writer(self.path, fps=fps, macro_block_size=2)

    def append(self, frame_HW3: np.ndarray) -> None:
        self._writer.append_data(np.asarray(frame_HW3, dtype=np.uint8))
        self.frames += 1

    def close(self) -> None:
        self._writer.close()


class FrameRecorder(gym.Wrapper):
    """Writes ``render()`` after every reset and step of the wrapped env, episode by
    episode: into one file (``path`` a file) or one file per episode (``path`` a
    directory: ``episode-000.mp4``, ...). A file is opened at an episode's first step,
    so the reset that follows the last episode writes nothing."""

    def __init__(self, env: gym.Env, path: Path, fps: float, per_episode: bool) -> None:
        super().__init__(env)
        self.out, self.fps, self.per_episode = Path(path), fps, per_episode
        self.written: list[Path] = []
        self._writer: VideoWriter | None = None
        self._first: np.ndarray | None = None  # the reset frame of the current episode
        self._episode = 0

    def reset(self, **kwargs):  # noqa: ANN003, ANN201 - gym.Wrapper's signature
        out = self.env.reset(**kwargs)
        self._first = self.env.render()
        return out

    def step(self, action):  # noqa: ANN001, ANN201 - gym.Wrapper's signature
        out = self.env.step(action)
        if self._writer is None:
            name = self.out / f"episode-{self._episode:03d}" if self.per_episode else self.out
            self._writer = VideoWriter(name, self.fps)
            self.written.append(self._writer.path)
        if self._first is not None:
            self._writer.append(self._first)
            self._first = None
        self._writer.append(self.env.render())
        if out[2] or out[3]:  # terminated or truncated
            self._episode += 1
            if self.per_episode:
                self._writer.close()
                self._writer = None
        return out

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        super().close()


def render_fps(env: gym.Env, config: Config) -> float:
    """Frames per second of a video of ``env``: its ``render_fps`` (Atari: divided by the
    frame skip, one frame per agent step), 30 when it does not say."""
    fps = float(env.metadata.get("render_fps") or 30)
    if config.env.id.startswith("ALE/"):
        fps /= max(config.env.frame_skip, 1)
    return max(fps, 1.0)


@dataclass(frozen=True)
class Recording:
    result: EvalResult  # the recorded episodes' evaluation
    files: list[Path]  # the files written, in episode order
    fps: float  # their frame rate


def record(
    policy: EpsilonGreedy,
    config: Config,
    path: Path,
    episodes: int,
    seed: int,
) -> Recording:
    """Play ``episodes`` evaluation episodes with ``policy`` in one render env of the run's
    env settings, writing them to ``path``: a file (``.mp4``/``.gif``: every episode in
    it, one after another) or a directory (one file per episode)."""
    require_imageio()
    path = Path(path)
    per_episode = path.suffix.lower() not in VIDEO_SUFFIXES
    env = make_render_env(config)
    fps = render_fps(env, config)
    recorder = FrameRecorder(env, path, fps, per_episode)
    envs = GymnasiumVecEnv(
        gym.vector.SyncVectorEnv(
            [lambda: recorder], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
        )
    )
    try:
        result = evaluate(policy, envs, episodes, seed=seed, gamma=config.learner.gamma)
    finally:
        envs.close()
    return Recording(result, recorder.written, fps)


def record_agent(agent: Any, path: Path, episodes: int, seed: int) -> Recording:
    """``record`` with a greedy evaluation policy of an ``rlkit.Agent`` (``eval.epsilon``
    of its run; ``seed`` seeds the env resets and the epsilon draws)."""
    return record(agent.eval_policy(seed), agent.config, path, episodes, seed)


class VideoEvery:
    """``eval.video_every``: after each env step that crosses a multiple of it, one greedy
    episode of the learner's current weights goes to ``videos/step-<env steps>`` and to
    TensorBoard. Acting uses its own policy copy and env, so training is unchanged."""

    def __init__(self, config: Config, directory: Path, writer: Any) -> None:
        require_imageio("eval.video_every")
        self.config = replace(config, eval=replace(config.eval, epsilon=0.0))
        self.every = config.eval.video_every
        self.directory, self.writer = Path(directory), writer
        self.components: Any = None
        self.policy: EpsilonGreedy | None = None
        self.last = 0

    def bind(self, components: Any) -> None:
        """Act with a copy of ``components.network``; count from the run's env step."""
        self.components = components
        self.policy = build_policy(
            self.config,
            components.network,
            components.envs.num_actions,
            components.device,
            evaluation=True,
        )
        self.last = components.trainer.counters.env_steps

    def __call__(self, env_steps: int) -> None:
        if self.policy is None or env_steps // self.every <= self.last // self.every:
            self.last = max(self.last, env_steps)
            return
        self.last = env_steps
        self.policy.load_params(self.components.learner.params())
        seed = self.config.trainer.seed + VIDEO_SEED_OFFSET + env_steps
        target = self.directory / f"step-{env_steps:08d}.mp4"
        recording = record(self.policy, self.config, target, 1, seed)
        for path in recording.files:
            self._log(path, env_steps, recording.fps)

    def _log(self, path: Path, env_steps: int, fps: float) -> None:
        if importlib.util.find_spec("moviepy") is None:  # TensorBoard's encoder needs it
            self.writer.add_text("eval/video", str(path), env_steps)
            return
        imageio = require_imageio()
        frames_THW3 = np.stack(list(imageio.mimread(path, memtest=False)))
        video_1TCHW = np.moveaxis(frames_THW3[..., :3], -1, 1)[None]
        self.writer.add_video("eval/video", video_1TCHW, env_steps, fps=max(int(fps), 1))
