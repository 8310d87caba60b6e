"""Work spread over a Ray cluster (issue 25): a pool of long-lived workers (Ray actors), one per GPU or per CPU
slot, each building its state once (the models: seconds to load, so never once per input), and tasks handed to
whichever worker is free. A worker that dies (its process exits, its node goes away) loses the tasks it held:
they go back to the queue and run on another worker, which replaces the dead one (Ray places it wherever the
cluster has room: another node when that one is gone). Results are written by the workers themselves,
atomically, to storage every node sees; the driver only collects what each task reports.

Why actors and tasks rather than Ray Data: the unit of work is "an input → a folder of files written by a model
that takes seconds to load", not rows of a table; actors keep the models loaded, a task per (small batch of)
input(s) gives per-input retries and failure reports, and the resume rule (a finished output folder is skipped)
stays the one of the single-machine path. Ray Data's ``map_batches`` with actor pools would also load models
once, but its retries and outputs are per block of rows, and writing one atomic folder per input is outside it.

``ray`` is imported only here, only when a cluster is asked for (the ``ray`` extra)."""

from __future__ import annotations

import os
from collections import deque
from typing import Any, Callable, Sequence

from lyra3d.errors import InputError

#: Environment variables handed to every worker (the test hooks of the pipelines that use this pool).
WORKER_ENV_PREFIX = "LYRA3D_"


def import_ray():
    """The ``ray`` module, or a one-line error naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs the ray package: pip install 'lyra3d[ray]'") from None
    return ray


def connect(address: str | None) -> tuple[Any, bool]:
    """Join the Ray cluster at ``address`` (``None`` or ``"local"``: start a local one, or use the one this
    process already joined). Returns ``(ray, started)``: ``started`` when this call connected (and so the
    caller disconnects with ``ray.shutdown()``)."""
    ray = import_ray()
    if ray.is_initialized():
        return ray, False
    try:
        ray.init(address=None if address in (None, "", "local") else address, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    except ConnectionError as e:
        raise InputError(f"cannot reach the Ray cluster at {address} ({e}); start it with `ray start --head` "
                         "or pass --ray without an address for a local one") from None
    return ray, True


def worker_count(ray, gpu: bool, requested: int | None = None) -> int:
    """Workers to start: ``requested``, else one per GPU of the cluster (``gpu``) or one per CPU slot."""
    res = ray.cluster_resources()
    have = int(res.get("GPU", 0)) if gpu else int(res.get("CPU", 0))
    if gpu and have < 1:
        raise InputError("the Ray cluster has no GPU; use --device cpu or a cluster with GPUs")
    return max(1, requested or have)


class _Worker:
    """The actor: holds ``worker`` (which loads its models on first use) and runs it on each task."""

    def __init__(self, worker: Callable[[Any], Any]):
        self.fn = worker

    def run(self, task):
        return self.fn(task)


def ray_map(worker: Callable[[Any], Any], tasks: Sequence[Any], *, address: str | None = None,
            gpu: bool = False, workers: int | None = None, on_result: Callable[[Any, Any], None],
            on_lost: Callable[[Any, str], None], max_attempts: int = 3, in_flight: int = 2) -> None:
    """Run ``worker(task)`` for every task on a pool of Ray actors (see the module docstring).

    Args:
        worker: a picklable callable, sent once to every actor; it loads its models on its first task and keeps
            them.
        address: the cluster (``None``/``"local"``: a local one).
        gpu: one worker per GPU (``num_gpus=1`` each), else one per CPU slot (``num_cpus=1`` each).
        workers: how many workers (default: one per GPU / CPU slot of the cluster).
        on_result: called in this process with ``(task, result)`` as each task finishes.
        on_lost: called with ``(task, reason)`` for a task whose worker died ``max_attempts`` times, or whose
            function raised (not retried: the function reports its own input errors).
        in_flight: tasks queued on one worker at a time (the next is ready when one ends)."""
    ray, started = connect(address)
    try:
        n = worker_count(ray, gpu, workers)
        env = {k: v for k, v in os.environ.items() if k.startswith(WORKER_ENV_PREFIX)}
        opts = {"num_gpus": 1, "num_cpus": 1} if gpu else {"num_cpus": 1}
        actor_class = ray.remote(max_restarts=0, max_task_retries=0)(_Worker)
        opts["runtime_env"] = {"env_vars": env} if env else None

        def start():
            return actor_class.options(**opts).remote(worker)

        pool = [start() for _ in range(n)]
        lost_errors = tuple(getattr(ray.exceptions, name) for name in
                            ("RayActorError", "WorkerCrashedError", "ActorUnavailableError", "NodeDiedError")
                            if hasattr(ray.exceptions, name))
        queue = deque(range(len(tasks)))
        attempts = [0] * len(tasks)
        load = {id(a): 0 for a in pool}
        running: dict = {}  # object ref → (actor, task index)
        try:
            while queue or running:
                for actor in list(pool):
                    while queue and load[id(actor)] < in_flight:
                        i = queue.popleft()
                        running[actor.run.remote(tasks[i])] = (actor, i)
                        load[id(actor)] += 1
                ready, _ = ray.wait(list(running), num_returns=1)
                for ref in ready:
                    actor, i = running.pop(ref)
                    load[id(actor)] = max(0, load.get(id(actor), 1) - 1)
                    try:
                        result = ray.get(ref)
                    except lost_errors as e:
                        attempts[i] += 1
                        if actor in pool:  # its process is gone: a new worker takes its place
                            pool.remove(actor)
                            load.pop(id(actor), None)
                            fresh = start()
                            pool.append(fresh)
                            load[id(fresh)] = 0
                        if attempts[i] < max_attempts:
                            queue.appendleft(i)  # to the next free worker
                        else:
                            on_lost(tasks[i], f"its worker died {attempts[i]} times ({type(e).__name__})")
                        continue
                    except ray.exceptions.RayTaskError as e:
                        on_lost(tasks[i], str(e.cause if getattr(e, "cause", None) else e).splitlines()[0])
                        continue
                    on_result(tasks[i], result)
        finally:
            for actor in pool:
                ray.kill(actor)
    finally:
        if started:
            ray.shutdown()
