"""The training loop: the official recipe on ``tf.distribute``, with hard distillation,
EMA, adaptive gradient clipping, step checkpoints that a killed run resumes from, and a
stop on a non-finite loss."""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import shutil
import tempfile
import time
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from swiftformer_tf.errors import TrainingError
from swiftformer_tf.export.qat import is_qat_model
from swiftformer_tf.training import cluster
from swiftformer_tf.training import data as data_lib
from swiftformer_tf.training.recipe import Recipe


# -- optimisation ----------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="swiftformer_tf")
class EpochCosineSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """timm's CosineLRScheduler stepped per epoch: linear warm-up from ``warmup_lr``, then
    ``min_lr + (lr - min_lr) * (1 + cos(pi * epoch / epochs)) / 2``."""

    def __init__(self, lr, epochs, steps_per_epoch, warmup_epochs=5, warmup_lr=1e-6, min_lr=1e-5):
        self.lr, self.epochs, self.steps_per_epoch = lr, epochs, steps_per_epoch
        self.warmup_epochs, self.warmup_lr, self.min_lr = warmup_epochs, warmup_lr, min_lr

    def __call__(self, step):
        epoch = tf.cast(step // self.steps_per_epoch, tf.float32)
        cosine = self.min_lr + 0.5 * (self.lr - self.min_lr) * (
            1.0 + tf.cos(math.pi * epoch / float(max(self.epochs, 1))))
        if not self.warmup_epochs:
            return cosine
        warm = self.warmup_lr + (self.lr - self.warmup_lr) * epoch / float(self.warmup_epochs)
        return tf.where(epoch < self.warmup_epochs, warm, cosine)

    def get_config(self):
        return dict(lr=self.lr, epochs=self.epochs, steps_per_epoch=self.steps_per_epoch,
                    warmup_epochs=self.warmup_epochs, warmup_lr=self.warmup_lr, min_lr=self.min_lr)


def _no_decay(variable) -> bool:
    """Biases and BatchNorm parameters: 1-D in the official (PyTorch) layout. Layer scales
    ((C, 1, 1) there) and w_g do get weight decay, as in the official run."""
    name = variable.path.split("/")[-1]
    return name in ("bias", "gamma", "beta", "activation_ranges")


def _unit_axes(variable):
    """Axes of timm's unitwise norm, in Keras layout (PyTorch's output dim is axis 0)."""
    name, rank = variable.path.split("/")[-1], len(variable.shape)
    if name.startswith("layer_scale") or name == "activation_ranges":
        return None  # (C, 1, 1) in PyTorch: every element is its own unit; so is a range
    if rank <= 1:
        return list(range(rank))  # 1-D: one unit
    if "dwconv" in variable.path and name == "kernel":
        return [0, 1, 3]  # depthwise (kh, kw, C, 1) <- (C, 1, kh, kw)
    if name == "w_g":
        return [1]  # (C, 1) in both
    return list(range(rank - 1))  # (..., in, out) <- (out, in, ...)


def adaptive_clip(grads, variables, clip=0.01, eps=1e-3):
    """timm adaptive_clip_grad (AGC, unitwise)."""
    clipped = []
    for grad, var in zip(grads, variables):
        axes = _unit_axes(var)
        value = tf.convert_to_tensor(var)
        if axes is None:
            p_norm, g_norm = tf.abs(value), tf.abs(grad)
        else:
            p_norm = tf.sqrt(tf.reduce_sum(tf.square(value), axis=axes, keepdims=True))
            g_norm = tf.sqrt(tf.reduce_sum(tf.square(grad), axis=axes, keepdims=True))
        max_norm = tf.maximum(p_norm, eps) * clip
        scale = max_norm / tf.maximum(g_norm, 1e-6)
        clipped.append(tf.where(g_norm > max_norm, grad * scale, grad))
    return clipped


# -- the trainer -----------------------------------------------------------------------------
@dataclasses.dataclass
class RunOptions:
    output: str
    epochs: int
    batch_size: int  # per replica
    image_size: int
    seed: int = 0
    save_every: int = 500
    keep_checkpoints: int = 3
    jit: bool = False
    log_every: int = 1
    max_steps: Optional[int] = None  # stop early (tests, benchmarks)


class Trainer:
    def __init__(self, model_fn, recipe: Recipe, train: data_lib.Split,
                 val: Optional[data_lib.Split], options: RunOptions, augmentation, strategy,
                 teacher_fn=None, sync_batchnorm=False):
        self.recipe, self.train_split, self.val_split = recipe, train, val
        self.options, self.augmentation, self.strategy = options, augmentation, strategy
        self.replicas = strategy.num_replicas_in_sync
        self.global_batch = options.batch_size * self.replicas
        # Only the chief writes the run folder; the other workers of a cluster take part in
        # saving (it may run collectives) but write to a folder of their own, removed by
        # close(). Every worker restores from the chief's checkpoints.
        self.chief = cluster.is_chief(strategy)
        self.write_dir = options.output if self.chief else tempfile.mkdtemp(
            prefix="swiftformer_worker_")
        self.steps_per_epoch = data_lib.steps_per_epoch(train, self.global_batch)
        with strategy.scope():
            self.model = model_fn()
            if sync_batchnorm:
                for layer in self.model._flatten_layers():
                    if isinstance(layer, keras.layers.BatchNormalization):
                        layer.synchronized = True
            self.teacher = teacher_fn() if teacher_fn else None
            self.distillation = self.teacher is not None
            # quantization-aware fine-tuning: one (merged) head, distilled from the float model
            self.qat = is_qat_model(self.model)
            if self.distillation and not self.model.distillation and not self.qat:
                raise TrainingError("a teacher needs a model with the distillation head")
            schedule = EpochCosineSchedule(recipe.lr, options.epochs, self.steps_per_epoch,
                                           recipe.warmup_epochs, recipe.warmup_lr, recipe.min_lr)
            self.optimizer = keras.optimizers.AdamW(
                learning_rate=schedule, weight_decay=recipe.weight_decay,
                epsilon=recipe.opt_eps, beta_1=0.9, beta_2=0.999)
            self.optimizer.exclude_from_weight_decay(
                var_list=[v for v in self.model.trainable_variables if _no_decay(v)])
            self.optimizer.build(self.model.trainable_variables)
            # EMA of every weight, BatchNorm statistics included (timm ModelEma v1)
            self.ema = [tf.Variable(tf.convert_to_tensor(w), trainable=False,
                                    name=f"ema_{i}") for i, w in enumerate(self.model.weights)]
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        # Keras 3 objects do not hand every variable to tf.train.Checkpoint (BatchNorm moving
        # statistics were silently left out), so the checkpoint lists the variables itself.
        self.checkpoint = tf.train.Checkpoint(
            weights=[_tf_variable(v) for v in self.model.weights],
            optimizer=[_tf_variable(v) for v in self.optimizer.variables],
            ema=self.ema, step=self.step)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, os.path.join(self.write_dir, "checkpoints"),
            max_to_keep=options.keep_checkpoints)
        self._train_step = self._make_train_step()

    # -- steps --------------------------------------------------------------------------------
    def _loss(self, images, targets, labels, training=True):
        outputs = self.model(images, training=training)
        if self.qat:  # the logits of the float model it started from, plus the labels
            base = keras.losses.categorical_crossentropy(targets, outputs, from_logits=True)
            if not self.distillation:
                return base
            float_logits = self.teacher(self._teacher_input(images), training=False)
            dist = tf.reduce_mean(tf.square(outputs - float_logits), axis=-1)
            alpha = self.recipe.distillation_alpha
            return (1.0 - alpha) * base + alpha * dist
        if self.model.distillation:
            head, dist_head = outputs
            base = keras.losses.categorical_crossentropy(targets, head, from_logits=True)
            if self.distillation:
                teacher_logits = self.teacher(self._teacher_input(images), training=False)
                hard = tf.argmax(teacher_logits, axis=-1)
                dist = keras.losses.sparse_categorical_crossentropy(hard, dist_head, from_logits=True)
            else:  # no teacher: both heads learn the labels
                dist = keras.losses.categorical_crossentropy(targets, dist_head, from_logits=True)
            alpha = self.recipe.distillation_alpha
            per_example = (1.0 - alpha) * base + alpha * dist
        else:
            per_example = keras.losses.categorical_crossentropy(targets, outputs, from_logits=True)
        return per_example

    def _teacher_input(self, images):
        if getattr(self.teacher, "_expects_0_255", False):
            from swiftformer_tf.imagenet import IMAGENET_MEAN, IMAGENET_STD
            return (images * tf.constant(IMAGENET_STD) + tf.constant(IMAGENET_MEAN)) * 255.0
        return images

    def _make_train_step(self):
        model, optimizer, ema = self.model, self.optimizer, self.ema
        clip, decay = self.recipe.clip_grad, self.recipe.ema_decay

        def replica_step(images, targets, labels):
            with tf.GradientTape() as tape:
                per_example = self._loss(images, targets, labels)
                loss = tf.reduce_sum(per_example) / float(self.global_batch)
            grads = tape.gradient(loss, model.trainable_variables)
            if clip:  # AGC acts on the global gradient, as after DDP's all-reduce
                grads = tf.distribute.get_replica_context().all_reduce("sum", grads)
                grads = adaptive_clip(grads, model.trainable_variables, clip)
                # the optimizer sums over replicas again: hand each its share (exact for
                # power-of-two replica counts)
                grads = [g / float(self.replicas) for g in grads]
            optimizer.apply(grads, model.trainable_variables)
            return loss

        def update_ema():
            for average, weight in zip(ema, model.weights):
                average.assign(decay * average + (1.0 - decay) * tf.convert_to_tensor(weight))

        @tf.function(jit_compile=self.options.jit)
        def distributed_step(images, targets, labels):
            losses = self.strategy.run(replica_step, args=(images, targets, labels))
            return self.strategy.reduce("sum", losses, axis=None)

        @tf.function
        def step(images, targets, labels):
            loss = distributed_step(images, targets, labels)
            update_ema()
            self.step.assign_add(1)
            return loss

        return step

    def train_step(self, images, targets, labels):
        """One optimizer step on a global batch, as ``fit`` runs it (loss, AGC, AdamW, EMA);
        ``targets`` are the smoothed one-hot labels. Returns the loss."""
        return self._train_step(images, targets, labels)

    # -- data -----------------------------------------------------------------------------------
    def _epoch_dataset(self, epoch, skip):
        ds = data_lib.train_dataset(self.train_split, self.global_batch, self.options.image_size,
                                    self.augmentation, self.options.seed, epoch, skip)
        return self.strategy.experimental_distribute_dataset(ds)

    # -- evaluation -------------------------------------------------------------------------------
    def evaluate(self, use_ema=False, batch_size=None):
        if self.val_split is None:
            return {}
        backup = None
        if use_ema:
            backup = [tf.convert_to_tensor(w) for w in self.model.weights]
            for weight, average in zip(self.model.weights, self.ema):
                weight.assign(average)
        try:
            return evaluate_model(lambda x: self.model(x, training=False),
                                  data_lib.eval_dataset(self.val_split, batch_size or
                                                        self.options.batch_size,
                                                        self.options.image_size))
        finally:
            if backup is not None:
                for weight, value in zip(self.model.weights, backup):
                    weight.assign(value)

    # -- the loop -------------------------------------------------------------------------------
    def restore(self) -> Optional[str]:
        latest = tf.train.latest_checkpoint(os.path.join(self.options.output, "checkpoints"))
        if latest:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
        return latest

    def close(self):
        """Removes a non-chief worker's own folder."""
        if not self.chief:
            shutil.rmtree(self.write_dir, ignore_errors=True)

    def fit(self, log=print):
        options, steps = self.options, self.steps_per_epoch
        os.makedirs(self.write_dir, exist_ok=True)
        total = options.epochs * steps
        if options.max_steps:
            total = min(total, options.max_steps)
        csv_path = os.path.join(self.write_dir, "log.csv")
        writer = tf.summary.create_file_writer(os.path.join(self.write_dir, "tensorboard")) \
            if self.chief else tf.summary.create_noop_writer()
        log = log if self.chief else None
        start_step = int(self.step.numpy())
        started = time.time()
        history = []
        last_good = tf.train.latest_checkpoint(os.path.join(options.output, "checkpoints"))
        while int(self.step.numpy()) < total:
            current = int(self.step.numpy())
            epoch, skip = divmod(current, steps)
            progbar = keras.utils.Progbar(steps, stateful_metrics=["lr"],
                                          unit_name="step") if log else None
            if progbar is not None:
                log(f"epoch {epoch + 1}/{options.epochs}" + (f" (resuming at step {skip})" if skip else ""))
                progbar.update(skip)
            losses = []
            for images, targets, labels in self._epoch_dataset(epoch, skip):
                loss = float(self._train_step(images, targets, labels))
                current = int(self.step.numpy())
                if not math.isfinite(loss):
                    kept = last_good or "none (no checkpoint was written yet)"
                    raise TrainingError(
                        f"loss became {loss} at step {current} (epoch {epoch + 1}); stopped "
                        f"without saving. Last good checkpoint: {kept}. Try a lower --lr or "
                        f"check the data.")
                losses.append(loss)
                lr = float(self.optimizer.learning_rate)
                if progbar is not None:
                    progbar.update(current - epoch * steps, [("loss", loss), ("lr", lr)])
                with writer.as_default():
                    tf.summary.scalar("train/loss", loss, step=current)
                    tf.summary.scalar("train/lr", lr, step=current)
                if options.save_every and current % options.save_every == 0:
                    last_good = self.manager.save(checkpoint_number=current)
                if current >= total:
                    break
            epoch_done = int(self.step.numpy()) % steps == 0
            if epoch_done or int(self.step.numpy()) >= total:
                last_good = self.manager.save(checkpoint_number=int(self.step.numpy()))
            metrics = self.evaluate() if epoch_done else {}
            row = {"epoch": epoch + 1, "step": int(self.step.numpy()),
                   "lr": float(self.optimizer.learning_rate),
                   "train_loss": float(np.mean(losses)) if losses else float("nan"),
                   "val_top1": metrics.get("top1"), "val_top5": metrics.get("top5"),
                   "seconds": round(time.time() - started, 1)}
            history.append(row)
            with writer.as_default():
                for key in ("val_top1", "val_top5"):
                    if row[key] is not None:
                        tf.summary.scalar(key.replace("_", "/"), row[key], step=row["step"])
            new = not os.path.exists(csv_path)
            with open(csv_path, "a", newline="") as f:  # a worker's own copy is removed
                out = csv.DictWriter(f, fieldnames=list(row))
                if new:
                    out.writeheader()
                out.writerow(row)
            if log and metrics:
                log(f"epoch {epoch + 1}: train loss {row['train_loss']:.4f}, val top-1 "
                    f"{100 * metrics['top1']:.2f}%, top-5 {100 * metrics['top5']:.2f}%")
        images_seen = (int(self.step.numpy()) - start_step) * self.global_batch
        elapsed = time.time() - started
        return {"history": history, "steps": int(self.step.numpy()), "seconds": elapsed,
                "images_per_second": images_seen / elapsed if elapsed else None}

    def export(self):
        """Saves the final model and its EMA copy as .keras files."""
        paths = {}
        model_path = os.path.join(self.write_dir, "model.keras")
        self.model.save(model_path)
        paths["model"] = model_path
        backup = [tf.convert_to_tensor(w) for w in self.model.weights]
        for weight, average in zip(self.model.weights, self.ema):
            weight.assign(average)
        ema_path = os.path.join(self.write_dir, "model_ema.keras")
        self.model.save(ema_path)
        paths["ema"] = ema_path
        for weight, value in zip(self.model.weights, backup):
            weight.assign(value)
        return paths


def _tf_variable(variable):
    return getattr(variable, "value", variable)


def evaluate_model(predict, dataset, progress=None) -> dict:
    """Top-1 / top-5 of ``predict`` (a batch -> logits callable) over (image, label) batches."""
    correct1 = correct5 = count = 0
    for images, labels in (progress(dataset) if progress else dataset):
        logits = np.asarray(predict(images))
        labels = np.asarray(labels)
        top5 = np.argsort(-logits, axis=-1)[:, :5]
        correct1 += int((top5[:, 0] == labels).sum())
        correct5 += int((top5 == labels[:, None]).any(axis=1).sum())
        count += len(labels)
    if not count:
        raise TrainingError("the evaluation split is empty")
    return {"top1": correct1 / count, "top5": correct5 / count, "images": count}

