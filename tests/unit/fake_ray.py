"""A synchronous stand-in for the few Ray calls the Ape-X loop makes: ``handle.method
.remote(...)`` runs the method at once and returns a ref holding its value (or its
error); ``wait`` returns the oldest ref. It lets the loop and the roles be tested one
step at a time, deterministically, without Ray."""

from __future__ import annotations

from types import SimpleNamespace


class FakeRayError(Exception):
    """Stands for ``ray.exceptions.RayError`` (the base)."""


class FakeActorError(FakeRayError):
    """Stands for ``ray.exceptions.RayActorError``."""


class Ref:
    def __init__(self, value=None, error: BaseException | None = None) -> None:
        self.value, self.error = value, error


class Handle:
    """``handle.method.remote(*args)`` -> ``Ref`` of ``obj.method(*args)``; ``fail`` makes
    the next calls of a method raise (as calls to a dead actor do)."""

    def __init__(self, obj) -> None:
        self.obj = obj
        self.calls: list[tuple[str, tuple]] = []
        self.failing: dict[str, int] = {}

    def __getattr__(self, name):
        method = getattr(self.obj, name)
        handle = self

        class _Remote:
            def remote(self, *args):
                handle.calls.append((name, args))
                if handle.failing.get(name, 0) > 0:
                    handle.failing[name] -= 1
                    return Ref(error=FakeActorError(f"{name} died"))
                try:
                    return Ref(method(*args))
                except Exception as exc:  # noqa: BLE001 - a task error, as Ray reports it
                    return Ref(error=FakeRayError(str(exc)))

        return _Remote()


class FakeRay:
    exceptions = SimpleNamespace(RayActorError=FakeActorError, RayError=FakeRayError)

    def __init__(self) -> None:
        self.killed: list = []

    def put(self, value) -> Ref:
        return Ref(value)

    def get(self, ref: Ref):
        if ref.error is not None:
            raise ref.error
        return ref.value

    def wait(self, refs, num_returns=1, timeout=None):
        return refs[:num_returns], refs[num_returns:]

    def kill(self, handle, no_restart=True) -> None:
        self.killed.append(handle)

    def shutdown(self) -> None:
        pass
