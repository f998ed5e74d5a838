"""Helper for test_training: a few training steps on one and on two logical CPU devices
(MirroredStrategy), all in one process (one TensorFlow start-up instead of four).

    python tests/distributed_run.py OUTPUT.npz [frozen|sync|kernel ...]

Runs, each saved as ``{run}/{index}`` for the model's weights then the EMA's:
- ``one``, ``two_sync``: the recipe's learning rate, BatchNorm over the global batch
  (``--sync-bn``): the same function, so the same weights and statistics.
- ``two_frozen``: learning rate 0 and per-replica BatchNorm (the default): the weights
  stay put, and ``stem/expected_*`` holds the first BatchNorm's moving statistics computed
  here in float64 from the same three global batches (its input, the first conv's output,
  does not depend on how BatchNorm normalises).
For the two-replica runs ``{run}/spread`` holds, per moving statistic, the largest
difference between the replicas' copies of it. ``bn/*`` (always; ``kernel`` alone runs
nothing else): one BatchNorm update by ``kernels.batch_norm_train`` on two replicas whose
halves of the batch differ, against NumPy's mean and unbiased variance of the whole batch.
"""

import os
import sys

import numpy as np
import tensorflow as tf

output, chosen = sys.argv[1], set(sys.argv[2:] or ["frozen", "sync"])
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras  # noqa: E402

from swiftformer_tf import SwiftFormer  # noqa: E402
from swiftformer_tf.training import data as data_lib  # noqa: E402
from swiftformer_tf.training.recipe import Recipe  # noqa: E402
from swiftformer_tf.training.trainer import RunOptions, Trainer  # noqa: E402

tf.config.experimental.enable_op_determinism()
train, _ = data_lib.synthetic_splits(64, 16, size=40, seed=1)
# One strategy of each kind for every run: a second MirroredStrategy in the same process
# would number its collectives from the start again and meet the first one's.
strategies = {1: tf.distribute.OneDeviceStrategy("/cpu:0"),
              2: tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])}
results = {}
for run, replicas, sync, lr in (("one", 1, True, 2e-3), ("two_sync", 2, True, 2e-3),
                                ("two_frozen", 2, False, 0.0)):
    if ("sync" if sync else "frozen") not in chosen:
        continue
    keras.utils.set_random_seed(0)
    strategy = strategies[replicas]
    # A large Adam eps keeps updates proportional to the gradients: with the default 1e-8,
    # Adam turns float-rounding differences in near-zero gradients into +-lr steps.
    recipe = Recipe(epochs=1, warmup_epochs=0, ema_decay=0.9, opt_eps=1.0, lr=lr, min_lr=lr)
    options = RunOptions(output=os.path.dirname(output) or ".", epochs=1,
                         batch_size=16 // replicas, image_size=32, save_every=0, max_steps=3)
    trainer = Trainer(lambda: SwiftFormer({"depths": [1, 1, 1, 2], "widths": [8, 16, 24, 32]},
                                          num_classes=10, input_shape=(32, 32, 3)),
                      recipe, train, None, options, data_lib.Augmentation(), strategy,
                      sync_batchnorm=sync)
    trainer.fit(log=None)
    for i, w in enumerate([np.asarray(w) for w in trainer.model.weights] +
                          [np.asarray(e) for e in trainer.ema]):
        results[f"{run}/{i}"] = w
    if replicas == 2:
        spread = []
        for w in trainer.model.weights:
            if "moving_" in w.path:
                copies = [np.asarray(c) for c in w.value.values]
                spread.append(max(np.abs(c - copies[0]).max() for c in copies))
        results[f"{run}/spread"] = np.asarray(spread)
    results["names"] = np.asarray([w.path for w in trainer.model.weights])
    if run == "two_frozen":  # the trainer's three global batches, in one piece
        stem = trainer.model.stem[0]
        mean, variance, momentum = np.zeros(stem.filters), np.ones(stem.filters), stem.norm.momentum
        for images, _, _ in data_lib.train_dataset(train, 16, 32, data_lib.Augmentation(),
                                                    options.seed, 0).take(3):
            y = np.asarray(stem.proj(tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]])), np.float64)
            mean = mean * momentum + y.mean((0, 1, 2)) * (1 - momentum)
            variance = variance * momentum + y.var((0, 1, 2), ddof=1) * (1 - momentum)
        results["stem/expected_mean"], results["stem/expected_variance"] = mean, variance

from swiftformer_tf import kernels  # noqa: E402

strategy = strategies[2]
with strategy.scope():
    bn = keras.layers.BatchNormalization(momentum=0.0)
    bn.build((None, 3, 5, 4))
rng = np.random.default_rng(0)
batch = np.concatenate([rng.normal(5.0, 1.0, (4, 3, 5, 4)), rng.normal(-3.0, 2.0, (4, 3, 5, 4))])
batch = batch.astype(np.float32)
halves = strategy.experimental_distribute_values_from_function(
    lambda context: tf.constant(batch[4 * context.replica_id_in_sync_group:][:4]))
tf.function(lambda x: strategy.run(lambda h: kernels.batch_norm_train(bn, h), args=(x,)))(halves)
for name, variable in (("mean", bn.moving_mean), ("variance", bn.moving_variance)):
    results[f"bn/{name}"] = np.stack([np.asarray(c) for c in variable.value.values])
results["bn/expected_mean"] = batch.astype(np.float64).mean((0, 1, 2))
results["bn/expected_variance"] = batch.astype(np.float64).var((0, 1, 2), ddof=1)
np.savez(output, **results)
