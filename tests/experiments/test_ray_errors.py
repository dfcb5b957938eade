"""A point or pod Ray cannot finish becomes one line naming it and the cause (no ray needed)."""
from experiments.ray_backend import _died


def _exc(name: str, text: str) -> Exception:
    return type(name, (Exception,), {})(text)


def test_dead_worker_node_and_oom_are_named():
    oom = _died(_exc("OutOfMemoryError", "Task was killed due to the node running low on memory.\nMemory on the node"),
                "point", "1a2b3c4d5e6f")
    assert oom == ("point 1a2b3c4d5e6f: its Ray worker ran out of memory (killed by Ray's memory monitor) "
                   "(OutOfMemoryError: Task was killed due to the node running low on memory.)")
    node = _died(_exc("NodeDiedError", "The node with node id abc has died"), "pod task", "prefix_aware/lru/pod3")
    assert node.startswith("pod task prefix_aware/lru/pod3: the Ray node running it died or left the cluster")
    crash = _died(_exc("WorkerCrashedError", "The worker died unexpectedly while executing this task."), "point", "x")
    assert "its Ray worker process died (killed, out of memory or crashed)" in crash
    other = _died(_exc("RuntimeEnvSetupError", "Failed to set up runtime environment"), "point", "y")
    assert other == "point y: Ray could not run it (RuntimeEnvSetupError: Failed to set up runtime environment)"
