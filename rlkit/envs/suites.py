"""Third-party env suites (ALE, MinAtar): which extra installs them, and registering them
with Gymnasium, which Gymnasium >= 1.0 requires explicitly."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Sequence
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
    suite = _suite(split_env_id(env_id)[1])
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


#: pip commands for modules whose install name differs from the module name
_PIP_NAMES = {
    "ale_py": "'rlkit[atari]'",
    "minatar": "'rlkit[minatar]'",
    "envpool": "'rlkit[envpool]'",
    "highway_env": "highway-env",
    "gymnasium_robotics": "gymnasium-robotics",
}


def pip_hint(module: str) -> str:
    """``pip install ...`` for a missing top-level module (a guess from its name)."""
    top = module.split(".")[0]
    return f"pip install {_PIP_NAMES.get(top, top.replace('_', '-'))}"


def import_module(name: str, key: str) -> Any:
    """Import ``name`` for the config key ``key``; EnvError naming the pip install of the
    missing module, or the error the module raised on import."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or name
        raise EnvError(
            f"{key}: cannot import {name!r}: no module named {missing!r} ({pip_hint(missing)})"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - whatever a third-party import raises
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EnvError(f"{key}: importing {name!r} failed: {first}") from exc


def split_env_id(env_id: str) -> tuple[str | None, str]:
    """Gymnasium's ``"module:EnvId"`` as ``(module, EnvId)``; ``(None, env_id)`` otherwise."""
    if ":" in env_id:
        module, _, name = env_id.partition(":")
        return module, name
    return None, env_id


def check_env_id(env_id: str, imports: Sequence[str] = ()) -> None:
    """Import ``imports`` and the module of a ``"module:EnvId"`` id, register rlkit's
    suites, and raise EnvError naming close matches when the id is not registered."""
    for i, name in enumerate(imports):
        import_module(name, f"env.imports[{i}]")
    module, name = split_env_id(env_id)
    if module is not None:
        import_module(module, "env.id")
    ensure_registered(name)
    if name in gym.registry:
        return
    close = difflib.get_close_matches(name, list(gym.registry), n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    where = f" after importing {module!r}" if module else ""
    if not close and module is None and not imports:
        hint = (
            " (for an env of another package, name its module: env.id 'module:EnvId', "
            "or env.imports: [module])"
        )
    raise EnvError(f"env.id: unknown Gymnasium environment {name!r}{where}{hint}")
