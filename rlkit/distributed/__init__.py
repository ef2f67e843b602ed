"""Training across processes and machines on Ray (the optional ``ray`` extra).

``distributed.backend: ray`` trains Ape-X style (``rlkit.distributed.apex``): actors,
replay shards, a parameter server and an evaluator run as Ray actors
(``rlkit.distributed.roles``), the learner in the calling process. The roles are the
one-machine roles (collector, policy, n-step, replay buffer, learner, evaluation) behind
a Ray transport. ``rlkit ablate --backend ray`` runs a suite's runs as Ray tasks
(``rlkit.app.experiments.ray_backend``).

This module only imports Ray on demand: ``require_ray`` gives a one-line error naming
the extra when it is missing, ``connect`` one naming the address when a cluster cannot
be reached.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from types import ModuleType

from rlkit.config import ConfigError

__all__ = ["DistributedError", "connect", "probe", "require_ray"]

#: Ray's log noise that a CLI run does not need (set before Ray starts)
_QUIET = {"RAY_AUTH_MODE": "disabled", "RAY_DEDUP_LOGS": "1"}


class DistributedError(ConfigError):
    """Ray is missing or the cluster cannot be reached (a one-line error, exit code 2)."""


def require_ray(what: str = "distributed.backend=ray") -> ModuleType:
    """The ``ray`` module; DistributedError naming the extra when it is not installed."""
    try:
        import ray
    except ImportError:
        raise DistributedError(
            f"{what} needs Ray: pip install 'rlkit[ray]' (or pip install 'ray>=2.30')"
        ) from None
    return ray


def probe(address: str, timeout: float = 3.0) -> None:
    """DistributedError unless ``host:port`` (or ``ray://host:port``) accepts a TCP
    connection (Ray itself retries an unreachable address for minutes)."""
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", "local" or a name Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise DistributedError(
            f"cannot reach the Ray cluster at {address!r}: {exc.strerror or exc}"
        ) from None


def connect(address: str = "", *, num_cpus: float = 0.0, object_store_mb: int = 128) -> bool:
    """Join the Ray cluster at ``address``, or start a local instance (``address`` empty)
    with at least ``num_cpus`` logical CPUs and an object store of ``object_store_mb``
    MiB. Returns True when this call started Ray (the caller shuts it down), False when
    Ray was already initialised in this process. DistributedError for a missing Ray or a
    cluster that cannot be reached."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    for key, value in _QUIET.items():
        os.environ.setdefault(key, value)
    if address:
        probe(address)
    try:
        if address:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        else:
            cpus = max(os.cpu_count() or 1, math.ceil(num_cpus))
            ray.init(
                num_cpus=cpus,
                object_store_memory=int(object_store_mb) * 2**20,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,  # not Ray's start-up lines on the terminal
            )
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
        raise DistributedError(f"cannot start or reach {where}: {first}") from None
    return True
