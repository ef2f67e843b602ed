"""Videos of greedy episodes (``rlkit.app.video``): ``rlkit eval --video`` and
``eval.video_every``.

Files are read back with imageio: the frame count is one reset frame plus one frame per
step of every recorded episode, frames are the rendered screen ([H, W, 3] uint8: 400x600
for CartPole, 210x160 for Atari, not the agent's 84x84 input), MP4 with ffmpeg and GIF
without it. ``eval.video_every`` writes ``videos/step-*`` at the crossed multiples, logs
``eval/video`` to TensorBoard and leaves training unchanged.
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import rlkit
import rlkit.app.video as video
from rlkit.app.cli import main
from rlkit.build import build_network
from rlkit.config import load_config
from tests.e2e.tiny import (  # noqa: F401 - _isolated is an autouse fixture
    CONFIGS,
    TINY,
    TOTAL_STEPS,
    _isolated,
    assert_one_line_error,
    cli,
    parse_eval,
    read_metrics,
    restore_torch_globals,
    sets,
    without_timing,
)

imageio = pytest.importorskip("imageio")

CARTPOLE_HW3 = (400, 600, 3)
ATARI_HW3 = (210, 160, 3)
VIDEO_EVERY = 100  # with TOTAL_STEPS = 300 and one env: videos after steps 100, 200, 300


def _train(run_dir: Path, *extra: str) -> Path:
    """`rlkit train --run-dir RUN_DIR --set <tiny budget> [EXTRA]` in-process."""
    out, err = io.StringIO(), io.StringIO()
    threads = torch.get_num_threads()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["train", "--run-dir", str(run_dir), *sets(*TINY, *extra)])
    finally:
        restore_torch_globals(threads)
    assert code == 0, out.getvalue() + err.getvalue()
    return run_dir


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("video") / "run")


@pytest.fixture
def recordings(monkeypatch) -> list[video.Recording]:
    """Every ``Recording`` that ``record_agent`` returns to the CLI."""
    seen: list[video.Recording] = []
    original = video.record_agent

    def spy(*args, **kwargs):
        seen.append(original(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(video, "record_agent", spy)
    return seen


def _frames(path: Path) -> np.ndarray:
    """Every frame of a video file, [T, H, W, 3]."""
    frames = [np.asarray(f) for f in imageio.mimread(path, memtest=False)]
    return np.stack([f[..., :3] for f in frames])  # a GIF may read back as RGBA


def _gif_millis(path: Path) -> int:
    """The play time of a GIF: the sum of its frames' durations in ms."""
    from PIL import Image

    with Image.open(path) as image:
        total = 0
        for i in range(image.n_frames):
            image.seek(i)
            total += image.info["duration"]
    return total


def _assert_screen(frames: np.ndarray, hw3: tuple[int, int, int]) -> None:
    assert frames.dtype == np.uint8
    assert frames.shape[1:] == hw3, frames.shape
    assert frames.min() < frames.max()  # not one colour
    assert not all(np.array_equal(frames[0], f) for f in frames[1:])  # it moves


def test_eval_video_file_holds_every_episode(capsys, trained, recordings, tmp_path):
    target = tmp_path / "out.mp4"
    args = ("eval", str(trained), "--episodes", "2", "--seed", "3")
    code, out, err = cli(capsys, *args, "--video", str(target))
    assert code == 0, err
    assert f"video: {target}" in out
    assert target.is_file() and target.read_bytes()[4:8] == b"ftyp"  # an MP4 container
    (recording,) = recordings
    assert recording.files == [target]
    lengths = recording.result.lengths
    _, _, episodes, mean_length = parse_eval(out)
    assert episodes == len(lengths) == 2
    assert mean_length == pytest.approx(sum(lengths) / 2, abs=0.05)
    frames = _frames(target)
    assert len(frames) == sum(lengths) + len(lengths)  # a reset frame per episode
    _assert_screen(frames, CARTPOLE_HW3)
    # one episode: the render env plays the episode that plain `rlkit eval` plays
    one = ("eval", str(trained), "--episodes", "1", "--seed", "3")
    code, plain, err = cli(capsys, *one)
    assert code == 0, err
    code, recorded, err = cli(capsys, *one, "--video", str(tmp_path / "one.mp4"))
    assert code == 0, err
    assert parse_eval(recorded) == parse_eval(plain)
    assert len(_frames(tmp_path / "one.mp4")) == recordings[-1].result.lengths[0] + 1


def test_eval_video_directory_holds_one_file_per_episode(capsys, trained, recordings, tmp_path):
    target = tmp_path / "episodes"
    code, out, err = cli(capsys, "eval", str(trained), "--episodes", "3", "--video", str(target))
    assert code == 0, err
    files = sorted(target.iterdir())
    assert [p.name for p in files] == [f"episode-{i:03d}.mp4" for i in range(3)]
    (recording,) = recordings
    assert recording.files == files
    for path, length in zip(files, recording.result.lengths, strict=True):
        frames = _frames(path)
        assert len(frames) == length + 1, path
        _assert_screen(frames, CARTPOLE_HW3)


def test_without_ffmpeg_a_gif_is_written(capsys, trained, recordings, tmp_path, monkeypatch):
    monkeypatch.setattr(video, "has_ffmpeg", lambda: False)
    target = tmp_path / "out.mp4"
    code, out, err = cli(capsys, "eval", str(trained), "--episodes", "1", "--video", str(target))
    assert code == 0, err
    gif = tmp_path / "out.gif"
    assert not target.exists()
    assert gif.read_bytes()[:4] == b"GIF8"
    assert f"video: {gif}" in out
    (recording,) = recordings
    _assert_screen(_frames(gif), CARTPOLE_HW3)
    # Pillow merges a frame equal to the one before into it, adding up their durations:
    # the play time is that of the reset frame and one frame per step
    assert _gif_millis(gif) == pytest.approx(
        (recording.result.lengths[0] + 1) * 1000 / recording.fps
    )


def test_atari_video_is_the_full_screen(tmp_path):
    pytest.importorskip("ale_py")
    overrides = {"trainer.device": "cpu", "env.max_episode_steps": 30}
    config = load_config(CONFIGS / "atari" / "pong_rainbow.yaml", overrides)
    torch.manual_seed(0)
    net = build_network(config, (config.env.frame_stack, 84, 84), 6)
    agent = rlkit.Agent(net, config, torch.device("cpu"))
    recording = video.record_agent(agent, tmp_path / "pong.mp4", episodes=1, seed=0)
    assert recording.files == [tmp_path / "pong.mp4"]
    assert recording.result.lengths == [30]
    frames = _frames(tmp_path / "pong.mp4")
    assert len(frames) == 31
    _assert_screen(frames, ATARI_HW3)


def test_video_every_records_during_training(trained, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = _train(tmp_path / "run", f"eval.video_every={VIDEO_EVERY}")
    steps = range(VIDEO_EVERY, TOTAL_STEPS + 1, VIDEO_EVERY)  # one env: one env step a step
    suffix = video.video_path(Path("x.mp4")).suffix
    expected = [f"step-{s:08d}{suffix}" for s in steps]
    assert sorted(p.name for p in (run_dir / "videos").iterdir()) == expected
    for name in expected:
        frames = _frames(run_dir / "videos" / name)
        assert len(frames) >= 2  # the reset frame and at least one step
        _assert_screen(frames, CARTPOLE_HW3)
    acc = EventAccumulator(str(run_dir), size_guidance={"tensors": 0, "images": 0})
    acc.Reload()
    tags = acc.Tags()
    if "eval/video/text_summary" in tags["tensors"]:  # no moviepy: the file's name
        events = acc.Tensors("eval/video/text_summary")
        texts = [e.tensor_proto.string_val[0].decode() for e in events]
        assert [e.step for e in events] == list(steps)
        assert [Path(t).name for t in texts] == expected
    else:  # moviepy: the episode itself (an animated image summary)
        assert [e.step for e in acc.Images("eval/video")] == list(steps)
    # recording acts with its own policy copy and env: training is unchanged
    assert without_timing(read_metrics(run_dir)) == without_timing(read_metrics(trained))


def test_eval_video_without_imageio_is_a_one_line_error(capsys, trained, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "imageio", None)  # `import imageio` raises ImportError
    code, _, err = cli(capsys, "eval", str(trained), "--video", str(tmp_path / "out.mp4"))
    assert_one_line_error(code, err, "pip install 'rlkit[video]'")
    assert not (tmp_path / "out.mp4").exists()
    code, _, err = cli(
        capsys, "train", "--run-dir", str(tmp_path / "run"), *sets(*TINY, "eval.video_every=100")
    )
    assert_one_line_error(code, err, "eval.video_every", "pip install 'rlkit[video]'")
    assert not (tmp_path / "run").exists()  # refused before the run dir is made
