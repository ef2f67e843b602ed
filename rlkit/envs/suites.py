"""Third-party env suites (ALE, MinAtar): which extra installs them, and registering them
with Gymnasium, which Gymnasium >= 1.0 requires explicitly."""

from __future__ import annotations

import difflib
from typing import Any

import gymnasium as gym

from rlkit.envs.base import EnvError


def _register_ale() -> None:
    import ale_py

    gym.register_envs(ale_py)


def _register_minatar() -> None:
    import logging

    logging.disable(logging.WARNING)  # MinAtar warns at import when seaborn is missing
    try:
        import minatar.gym as minatar_gym
    finally:
        logging.disable(logging.NOTSET)
    if not any(k.startswith("MinAtar/") for k in gym.registry):
        minatar_gym.register_envs()


# Third-party suites: id prefix -> (extra that installs it, registration function).
SUITES: dict[str, tuple[str, Any]] = {
    "ALE/": ("atari", _register_ale),
    "MinAtar/": ("minatar", _register_minatar),
}


def _suite(env_id: str) -> tuple[str, Any] | None:
    """(extra, registration function) of the suite ``env_id`` belongs to, if any."""
    return next((v for prefix, v in SUITES.items() if env_id.startswith(prefix)), None)


def suite_of(env_id: str) -> str | None:
    """The extra ("atari", "minatar") an env id belongs to, or None for Gymnasium's own."""
    suite = _suite(env_id)
    return None if suite is None else suite[0]


def ensure_registered(env_id: str) -> None:
    """Register the third-party suite of ``env_id`` with Gymnasium (explicitly, as
    Gymnasium >= 1.0 requires); EnvError naming the extra when it is not installed."""
    suite = _suite(env_id)
    if suite is None:
        return
    extra, register = suite
    try:
        register()
    except ImportError as exc:
        raise EnvError(
            f"env.id {env_id!r} needs the {extra} extra: pip install 'rlkit[{extra}]' ({exc})"
        ) from exc


def check_env_id(env_id: str) -> None:
    """Raise EnvError naming close matches when ``env_id`` is not registered."""
    ensure_registered(env_id)
    if env_id in gym.registry:
        return
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    raise EnvError(f"env.id: unknown Gymnasium environment {env_id!r}{hint}")
