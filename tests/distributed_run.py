"""Helper for test_training: a few training steps on one or two logical CPU devices.

    python tests/distributed_run.py {1|2} OUTPUT.npz
"""

import os
import sys

import numpy as np
import tensorflow as tf

replicas, output = int(sys.argv[1]), sys.argv[2]
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402

from swiftformer_tf import SwiftFormer  # noqa: E402
from swiftformer_tf.training import data as data_lib  # noqa: E402
from swiftformer_tf.training.recipe import Recipe  # noqa: E402
from swiftformer_tf.training.trainer import RunOptions, Trainer  # noqa: E402

keras.utils.set_random_seed(0)
tf.config.experimental.enable_op_determinism()
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]) if replicas == 2 else \
    tf.distribute.OneDeviceStrategy("/cpu:0")
train, val = data_lib.synthetic_splits(64, 16, size=40, seed=1)
# A large Adam eps keeps updates proportional to the gradients: with the default 1e-8, Adam
# turns float-rounding differences in near-zero gradients into +-lr steps.
recipe = Recipe(epochs=1, warmup_epochs=0, ema_decay=0.9, opt_eps=1.0)
options = RunOptions(output=os.path.dirname(output) or ".", epochs=1, batch_size=16 // replicas,
                     image_size=32, save_every=0, max_steps=3)
trainer = Trainer(lambda: SwiftFormer({"depths": [1, 1, 1, 2], "widths": [8, 16, 24, 32]},
                                      num_classes=10, input_shape=(32, 32, 3)),
                  recipe, train, None, options, data_lib.Augmentation(), strategy,
                  sync_batchnorm=True)
trainer.fit(log=None)
np.savez(output, *[np.asarray(w) for w in trainer.model.weights],
         *[np.asarray(e) for e in trainer.ema])
