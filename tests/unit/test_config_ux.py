"""What a user sees of the config: `rlkit train --help` lists the values the command will
run with, typo suggestions name the full dotted key, and errors name the file (or --set)
that the bad key came from, including a parent reached through ``extends:``."""

from __future__ import annotations

import pytest

from rlkit.app import cli
from rlkit.config import ConfigError, load_config


def _help(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 0
    return capsys.readouterr().out


def _line(text: str, key: str) -> str:
    (line,) = [ln for ln in text.splitlines() if ln.strip().startswith(key + " =")]
    return line


def test_train_help_shows_the_default_configs_values_not_the_dataclass_defaults(capsys):
    text = _help(capsys, ["train", "--help"])
    # configs/cartpole_rainbow.yaml sets alpha 0.2 and batch 128; the dataclasses say 0.5 / 64.
    assert "replay.alpha = 0.2" in _line(text, "replay.alpha")
    assert "learner.batch_size = 128" in _line(text, "learner.batch_size")
    assert "cartpole_rainbow.yaml" in text


def test_train_help_shows_the_given_configs_values_and_set(tmp_path, capsys):
    path = tmp_path / "mine.yaml"
    path.write_text("learner:\n  batch_size: 17\nenv:\n  id: Acrobot-v1\n")
    text = _help(capsys, ["train", str(path), "--set", "learner.gamma=0.9", "--help"])
    assert "learner.batch_size = 17" in _line(text, "learner.batch_size")
    assert "env.id = 'Acrobot-v1'" in _line(text, "env.id")
    assert "learner.gamma = 0.9" in _line(text, "learner.gamma")
    assert "mine.yaml with --set" in text


def test_train_help_still_works_when_the_config_is_bad(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("learner:\n  lrr: 1\n")
    text = _help(capsys, ["train", str(path), "--help"])
    assert "the dataclass defaults" in text and "learner.lrr" in text


def test_yaml_typo_gets_the_full_dotted_key_and_the_file(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("replay:\n  alpah: 0.5\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    assert "unknown key 'replay.alpah' (did you mean 'replay.alpha'?)" in message
    assert "\n" not in message


def test_set_typo_gets_the_full_dotted_key_and_says_set():
    with pytest.raises(
        ConfigError, match=r"^--set: unknown key 'learner.lrr' \(did you mean 'learner.lr'\?\)"
    ):
        load_config(None, ["learner.lrr=3"])


def test_wrong_type_in_yaml_names_the_file(tmp_path):
    path = tmp_path / "types.yaml"
    path.write_text("learner:\n  batch_size: many\n")
    with pytest.raises(ConfigError, match=rf"^{path}: learner.batch_size: "):
        load_config(path)


def test_wrong_type_from_an_extends_parent_names_the_parent(tmp_path):
    parent = tmp_path / "parent.yaml"
    parent.write_text("learner:\n  gamma: lots\n")
    child = tmp_path / "child.yaml"
    child.write_text("extends: parent.yaml\nlearner:\n  lr: 0.001\n")
    with pytest.raises(ConfigError) as err:
        load_config(child)
    assert str(err.value).startswith(f"{parent}: learner.gamma: ")


def test_key_overridden_by_set_is_blamed_on_set_not_the_file(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("learner:\n  gamma: 0.9\n")
    with pytest.raises(ConfigError, match=r"^--set learner.gamma: "):
        load_config(path, ["learner.gamma=2.0"])
    # the same value from the file is blamed on the file
    path.write_text("learner:\n  gamma: 2.0\n")
    with pytest.raises(ConfigError, match=rf"^{path}: learner.gamma"):
        load_config(path)
