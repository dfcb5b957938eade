"""A stand-in for the `ray` module as experiments.ray_backend uses it: an open connection to alive nodes
of given memory resources; tasks run here, each submission's `memory` option recorded."""
from sim.modes.memory import GiB


class Ref:
    def __init__(self, value) -> None:
        self.value = value


class FakeRay:
    """What run_ray calls of `ray`: an initialised connection to nodes of the given memory resources."""

    def __init__(self, node_gib: list[float]) -> None:
        self.node_gib = node_gib
        self.asked: dict[str, int | None] = {}  # task id -> the memory option it was submitted with

    def is_initialized(self) -> bool:
        return True

    def nodes(self) -> list[dict]:
        dead = {"Alive": False, "Resources": {"memory": 1e15}}  # a dead node's memory does not count
        return [dead] + [{"Alive": True, "Resources": {"CPU": 1.0, "memory": g * GiB}} for g in self.node_gib]

    def remote(self, **_):
        fake = self

        class Remote:
            def __init__(self, fn, memory=None) -> None:
                self.fn, self.memory = fn, memory

            def options(self, memory=None):
                return Remote(self.fn, memory)

            def remote(self, task, *rest):
                tid = task["point_id"] if isinstance(task, dict) else task.task_id
                fake.asked[tid] = self.memory
                return Ref(self.fn(task, *rest))

        return lambda fn: Remote(fn)

    def wait(self, pending, num_returns=1):
        return pending[:num_returns], pending[num_returns:]

    def get(self, ref):
        return ref.value

    def cancel(self, ref, force=False) -> None:
        pass
