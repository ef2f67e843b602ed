"""Observation and action spaces: packing into one flat array, the network's input
encoders, HWC image detection, flattened multi-actions. Expectations written by hand."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlkit.agent.nn.encoders import LayoutTorso, OneHot
from rlkit.agent.nn.qnet import QNetwork
from rlkit.agent.nn.torsos import MinAtarTorso, MLPTorso
from rlkit.envs import EnvError
from rlkit.envs.spaces import (
    ChannelsFirst,
    PackedObservation,
    adapt_actions,
    adapt_observations,
    is_channels_last,
    plan_layout,
)
from tests.space_envs import DictEnv, ImageEnv, MultiActionEnv


def test_channels_last_detection():
    assert is_channels_last((7, 7, 3))  # MiniGrid's image
    assert is_channels_last((10, 10, 4))  # MinAtar's raw grid
    assert not is_channels_last((4, 84, 84))  # Atari frame stack
    assert not is_channels_last((3, 7, 7))
    assert not is_channels_last((10, 10, 10))  # ambiguous: channels-first
    assert not is_channels_last((5, 4))


def test_discrete_packs_the_index_and_one_hot_is_built_by_the_net():
    layout, packers = plan_layout(spaces.Discrete(5, start=2))
    (part,) = layout.parts
    assert (part.kind, part.start, part.stop, part.classes) == ("onehot", 0, 1, (5,))
    assert layout.dtype == "uint8"  # 5 values fit in a byte: replay stores one byte
    assert packers[0](np.int64(4)).tolist() == [2]  # 4 - start 2
    one_hot = OneHot(part.classes)(torch.tensor([[2]], dtype=torch.uint8))
    assert one_hot.tolist() == [[0.0, 0.0, 1.0, 0.0, 0.0]]


def test_multidiscrete_one_hots_are_concatenated_with_offsets():
    layout, _ = plan_layout(spaces.MultiDiscrete([3, 4]))
    (part,) = layout.parts
    assert part.classes == (3, 4)
    # column 0 = 2 -> position 2 of the first 3; column 1 = 1 -> position 3 + 1 = 4
    out = OneHot(part.classes)(torch.tensor([[2, 1]]))
    assert out.tolist() == [[0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0]]


def test_large_discrete_gets_a_wider_dtype():
    layout, _ = plan_layout(spaces.Discrete(1000))
    assert layout.dtype == "uint16"


def test_dict_packs_parts_in_key_order_drops_text_with_a_warning():
    env = DictEnv()
    with pytest.warns(UserWarning, match="obs.mission.*Text"):
        wrapped = PackedObservation(env)
    layout = wrapped.obs_layout
    # Dict keys sorted: direction (1 column), flags (2), image (7*7*3 = 147); mission dropped
    assert [(p.name, p.kind, p.start, p.stop) for p in layout.parts] == [
        ("obs.direction", "onehot", 0, 1),
        ("obs.flags", "box", 1, 3),
        ("obs.image", "image", 3, 150),
    ]
    image = layout.parts[2]
    assert (
        image.shape == (3, 7, 7) and image.channels_last and image.scale == pytest.approx(1 / 255)
    )
    assert layout.dtype == "uint8"  # uint8 pixels, a Discrete(4), bools: all fit a byte
    obs, _ = wrapped.reset(seed=0)
    raw = env._obs()
    assert obs.dtype == np.uint8 and obs.shape == (150,)
    assert obs[0] == raw["direction"] and obs[1:3].tolist() == raw["flags"].tolist()
    assert np.array_equal(obs[3:].reshape(7, 7, 3), raw["image"])


def test_tuple_blackjack_layout():
    env = gym.make("Blackjack-v1")
    layout = PackedObservation(env).obs_layout
    assert [(p.name, p.classes) for p in layout.parts] == [
        ("obs[0]", (32,)),
        ("obs[1]", (11,)),
        ("obs[2]", (2,)),
    ]


def test_float_and_int_parts_pack_as_float32():
    space = spaces.Dict({"a": spaces.Discrete(3), "b": spaces.Box(-1, 1, (2,), np.float32)})
    layout, _ = plan_layout(space)
    assert layout.dtype == "float32"


def test_unsupported_part_is_refused_naming_it():
    space = spaces.Dict({"graph": spaces.Graph(spaces.Box(0, 1, (2,)), None)})
    with pytest.raises(EnvError, match=r"observation part 'obs.graph' is a Graph space"):
        plan_layout(space)


def test_hwc_image_env_is_transposed_and_gets_a_cnn_with_three_channels():
    env = adapt_observations(ImageEnv())
    assert isinstance(env, ChannelsFirst)
    assert env.observation_space.shape == (3, 7, 7)
    obs, _ = env.reset(seed=1)
    raw = env.unwrapped._obs()
    assert np.array_equal(obs, raw.transpose(2, 0, 1))  # obs[c, h, w] == raw[h, w, c]
    net = QNetwork(obs.shape, 3, atoms=1, noisy=False)
    assert isinstance(net.torso, MinAtarTorso)
    assert net.torso.net[0].in_channels == 3  # not 7: the image is read the right way round


def test_layout_torso_reads_hwc_images_like_a_cnn_on_the_transposed_image():
    env = PackedObservation(DictEnv())
    layout = env.obs_layout
    torch.manual_seed(0)
    torso = LayoutTorso(layout, ())
    obs = np.stack([env.reset(seed=s)[0] for s in range(3)])
    x = torch.as_tensor(obs)
    got = torso(x)
    # by hand: one-hot direction (4), flags as floats (2), CNN of the CHW image / 255
    direction = torch.nn.functional.one_hot(x[:, 0].long(), 4).float()
    flags = x[:, 1:3].float()
    image = x[:, 3:].reshape(3, 7, 7, 3).permute(0, 3, 1, 2).float() / 255.0
    cnn = torso.encoders[2].cnn
    want = torch.cat([direction, flags, cnn(image)], dim=1)
    torch.testing.assert_close(got, want)


def test_packed_net_does_not_scale_indices_by_255():
    layout, _ = plan_layout(spaces.Discrete(4))
    net = QNetwork((1,), 2, atoms=1, noisy=False, dueling=False, hidden_sizes=(), obs_layout=layout)
    assert isinstance(net.torso, LayoutTorso) and not isinstance(net.torso, MLPTorso)
    with torch.no_grad():
        weight = net.head.stream.weight  # [2, 4]: Q(s, a) = w[a, s] + b[a] for one-hot s
        q = net(torch.tensor([[3]], dtype=torch.uint8))
        torch.testing.assert_close(q[0], weight[:, 3] + net.head.stream.bias)


def test_multidiscrete_actions_flatten_row_major():
    env = adapt_actions(MultiActionEnv(), "test")
    assert env.action_space == spaces.Discrete(6)
    env.reset(seed=0)
    # 5 = 1 * 3 + 2 -> (1, 2), the rewarded joint action
    obs, reward, *_ = env.step(5)
    assert obs.tolist() == [1.0, 2.0] and reward == 1.0
    obs, reward, *_ = env.step(3)  # 3 = 1 * 3 + 0 -> (1, 0)
    assert obs.tolist() == [1.0, 0.0] and reward == 0.0


def test_discrete_actions_with_a_start_are_shifted():
    class Shifted(MultiActionEnv):
        def __init__(self):
            super().__init__()
            self.action_space = spaces.Discrete(3, start=-1)

        def step(self, action):
            self.last = np.array([action, 0], np.float32)
            return self.last.copy(), 0.0, False, False, {}

    env = adapt_actions(Shifted(), "test")
    assert env.action_space == spaces.Discrete(3)
    env.reset(seed=0)
    assert env.step(0)[0][0] == -1.0 and env.step(2)[0][0] == 1.0


def test_large_multidiscrete_and_continuous_actions_are_refused():
    big = MultiActionEnv()
    big.action_space = spaces.MultiDiscrete([16, 17])  # 272 joint actions > 256
    with pytest.raises(EnvError, match="272 joint actions"):
        adapt_actions(big, "big")
    box = MultiActionEnv()
    box.action_space = spaces.Box(-1, 1, (2,))
    with pytest.raises(EnvError, match="Box action space; DQN needs discrete actions"):
        adapt_actions(box, "box")
