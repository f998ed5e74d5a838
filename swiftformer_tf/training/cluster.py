"""Where training runs: the tf.distribute strategy, and which worker of a cluster writes.

Multi-worker training fails with "Collective ops must be configured at program startup" if
anything ran a TensorFlow op first, so ``make_strategy`` is the first thing a training
program does with TensorFlow (it imports TensorFlow itself, late, for that reason).
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import signal
from typing import List, Optional

from swiftformer_tf.errors import ClusterError
from swiftformer_tf.io_utils import quiet_stderr

STRATEGIES = ("auto", "one_device", "mirrored", "multiworker", "tpu")


@dataclasses.dataclass
class Task:
    """This process's place in a TF_CONFIG cluster."""

    type: str
    index: int
    workers: List[str]  # every address of the chief and worker jobs, chief first
    has_chief_job: bool = False

    @property
    def is_chief(self) -> bool:
        # TensorFlow's rule: the "chief" task if the cluster has one, else worker 0
        return self.type == "chief" or (self.index == 0 and not self.has_chief_job)


def read_tf_config(text: Optional[str]) -> Task:
    """The cluster and this task from TF_CONFIG, checked, with one-line errors."""
    if not text:
        raise ClusterError("--strategy multiworker needs TF_CONFIG, e.g. TF_CONFIG='{\"cluster\": "
                           "{\"worker\": [\"host1:2222\", \"host2:2222\"]}, \"task\": {\"type\": "
                           "\"worker\", \"index\": 0}}' (the same cluster on every worker, "
                           "each with its own index)")
    try:
        config = json.loads(text)
    except ValueError as err:
        raise ClusterError(f"TF_CONFIG is not valid JSON ({err})") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ClusterError("TF_CONFIG must be an object with \"cluster\" and \"task\" objects")
    for job, addresses in cluster.items():
        if not (isinstance(addresses, list) and addresses and all(
                isinstance(a, str) and a.rpartition(":")[2].isdigit() for a in addresses)):
            raise ClusterError(f"TF_CONFIG cluster job {job!r}: expected a list of "
                               f"\"host:port\" addresses, got {addresses!r}")
    kind, index = task.get("type"), task.get("index")
    if kind not in ("chief", "worker"):
        raise ClusterError(f"TF_CONFIG task type {kind!r}: this trainer runs chief and worker "
                           f"tasks (MultiWorkerMirroredStrategy)")
    if kind not in cluster:
        raise ClusterError(f"TF_CONFIG task type {kind!r} is not a job of the cluster "
                           f"({', '.join(cluster)})")
    if not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise ClusterError(f"TF_CONFIG task index {index!r}: the {kind} job has "
                           f"{len(cluster[kind])} task(s), numbered from 0")
    if len(cluster.get("chief", [])) > 1:
        raise ClusterError("TF_CONFIG: a cluster has at most one chief")
    return Task(kind, index, cluster.get("chief", []) + cluster.get("worker", []),
                has_chief_job="chief" in cluster)


def _watchdog(seconds: float, message: str):
    """Kills this process with ``message`` unless the returned function is called within
    ``seconds``. TensorFlow waits for missing workers inside C++, holding the GIL and
    ignoring SIGTERM (its preemption handler), so no thread can time it out: a forked
    helper does. Fork before TensorFlow starts its threads."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the helper: wait for "formed", or for the parent to exit, or give up
        os.close(write_end)
        ready, _, _ = select.select([read_end], [], [], seconds)
        if not ready:
            os.write(2, message.encode() + b"\n")
            os.kill(os.getppid(), signal.SIGKILL)
        os._exit(0)
    os.close(read_end)

    def formed():
        os.write(write_end, b"1")
        os.close(write_end)
        os.waitpid(pid, 0)
    return formed


def make_strategy(name: str = "auto", devices=None, cluster_timeout: float = 300.0,
                  prog: str = "swiftformer-train"):
    """The strategy for ``--strategy name``; first call of a program into TensorFlow."""
    if name not in STRATEGIES:
        raise ClusterError(f"unknown strategy {name!r}: use one of {', '.join(STRATEGIES)}")
    task = read_tf_config(os.environ.get("TF_CONFIG")) if name == "multiworker" else None
    formed = None
    if task is not None and len(task.workers) > 1:
        formed = _watchdog(cluster_timeout, (
            f"{prog}: error: the cluster of TF_CONFIG ({', '.join(task.workers)}) did not form "
            f"within {cluster_timeout:g} s: start the same command on every worker, check that "
            f"each address is reachable from the others, or raise --cluster-timeout"))
    import tensorflow as tf
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if name == "multiworker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        if formed is not None:
            formed()
        strategy.task = task
        return strategy
    with quiet_stderr():  # the runtime's start-up lines (CUDA probing, CPU features)
        gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")


def is_chief(strategy) -> bool:
    """Whether this process writes the run folder (the only process, or the cluster's chief)."""
    task = getattr(strategy, "task", None)
    return task is None or task.is_chief


def describe(strategy) -> str:
    task = getattr(strategy, "task", None)
    if task is None:
        return f"{type(strategy).__name__}, {strategy.num_replicas_in_sync} replica(s)"
    return (f"MultiWorkerMirroredStrategy, {task.type} {task.index} of {len(task.workers)} "
            f"workers, {strategy.num_replicas_in_sync} replicas"
            + (" (chief: writes the run folder)" if task.is_chief else ""))


def lost_peer_errors():
    """The TensorFlow errors a collective raises when another worker went away."""
    import tensorflow as tf
    return (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
            tf.errors.CancelledError, tf.errors.AbortedError)
