#!/usr/bin/env python3
"""Keras (TensorFlow backend) against PyTorch eager for SwiftFormer on this CPU: batch-1
latency, batch-32 inference throughput (with and without XLA) and one training step's
throughput (official recipe step: forward, loss, backward, AGC, AdamW, EMA).

Both sides run interleaved (A B A B) with the same thread count; the PyTorch model is
transformers' SwiftFormer with the official attention and the same weights.

    python benchmarks/keras_vs_pytorch.py --variant XS --threads 2 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time



def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", default="XS")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds per measurement")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--skip-xla", action="store_true")
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--json", help="write the results here")
    return p.parse_args(argv)


def _timed(fn, repeat):
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def interleave(contenders, rounds, repeat, gap=0.5):
    """{name: [seconds per call, one per round]}, contenders run in turn each round.

    ``gap`` seconds of sleep before each block: PyTorch's OpenMP workers keep spinning
    after a call, and in one process they took the cores from the next TensorFlow block
    (measured: Keras batch-1 26.4 ms right after PyTorch, 18.6 ms with PyTorch's workers
    asleep)."""
    for fn in contenders.values():
        fn()  # warm-up (tracing, allocation)
        fn()
    times = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            time.sleep(gap)
            fn()  # one untimed call wakes the runtime's thread pool
            times[name].append(_timed(fn, repeat))
    return times


def summarize(times, per_call_images=1, unit="ms"):
    out = {}
    for name, values in times.items():
        if unit == "ms":
            vals = [v * 1e3 for v in values]
        else:  # images per second
            vals = [per_call_images / v for v in values]
        out[name] = {"min": min(vals), "median": statistics.median(vals), "max": max(vals),
                     "unit": unit}
    return out


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import torch
    torch.set_num_threads(args.threads)

    import swiftformer_tf as sf
    from swiftformer_tf.training.data import Split
    from swiftformer_tf.training.recipe import Recipe
    from swiftformer_tf.training.trainer import RunOptions, Trainer
    from torch_reference import official_swiftformer

    keras_model = sf.SwiftFormer(args.variant, num_classes=1000)
    torch_model = official_swiftformer(args.variant)
    copy_weights(keras_model, torch_model)
    rng = np.random.default_rng(0)
    x1 = rng.normal(size=(1, args.size, args.size, 3)).astype(np.float32)
    xb = rng.normal(size=(args.batch, args.size, args.size, 3)).astype(np.float32)
    t1, tb = torch.from_numpy(x1.transpose(0, 3, 1, 2).copy()), torch.from_numpy(xb.transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        check = np.abs(torch_model(pixel_values=t1).logits.numpy() -
                       np.asarray(keras_model(x1))).max()
    results = {"variant": args.variant, "threads": args.threads, "batch": args.batch,
               "size": args.size, "max_logit_diff_keras_vs_torch": float(check)}

    infer = tf.function(lambda x: keras_model(x, training=False))
    infer_xla = tf.function(lambda x: keras_model(x, training=False), jit_compile=True)
    torch_model.eval()

    def torch_infer(t):
        with torch.no_grad():
            return torch_model(pixel_values=t).logits

    contenders = {"keras": lambda: infer(x1).numpy(), "pytorch_eager": lambda: torch_infer(t1)}
    if not args.skip_xla:
        contenders["keras_xla"] = lambda: infer_xla(x1).numpy()
    results["batch1_latency_ms"] = summarize(interleave(contenders, args.rounds, 10))
    contenders = {"keras": lambda: infer(xb).numpy(), "pytorch_eager": lambda: torch_infer(tb)}
    if not args.skip_xla:
        contenders["keras_xla"] = lambda: infer_xla(xb).numpy()
    results[f"batch{args.batch}_images_per_s"] = summarize(
        interleave(contenders, args.rounds, 2), args.batch, unit="img/s")

    if not args.skip_train:
        recipe = Recipe()
        labels = rng.integers(0, 1000, args.batch)
        targets = np.full((args.batch, 1000), recipe.smoothing / 1000, np.float32)
        targets[np.arange(args.batch), labels] += 1 - recipe.smoothing
        # the trainer's own step (loss of both heads, AGC, AdamW, EMA) on this batch
        import tempfile
        split = Split(make=lambda: None, size=args.batch, class_names=[""] * 1000)

        def make_step(jit):
            run = RunOptions(output=tempfile.mkdtemp(prefix="keras_vs_pytorch_"), epochs=1,
                             batch_size=args.batch, image_size=args.size, jit=jit)
            trainer = Trainer(lambda: keras_model, recipe, split, None, run, None,
                              tf.distribute.get_strategy())
            return lambda x, y: trainer.train_step(x, y, labels)

        keras_step = make_step(False)
        torch_model.train()
        torch_opt = torch.optim.AdamW(torch_param_groups(torch_model, recipe.weight_decay),
                                      lr=recipe.lr, eps=recipe.opt_eps)
        torch_ema = {k: v.detach().clone() for k, v in torch_model.state_dict().items()}
        torch_targets = torch.from_numpy(targets)

        def torch_step():
            torch_opt.zero_grad(set_to_none=True)
            out = torch_model.swiftformer(pixel_values=tb).last_hidden_state
            out = torch_model.norm(out).flatten(2).mean(-1)
            head, dist = torch_model.head(out), torch_model.dist_head(out)
            loss = 0.5 * torch.sum(-torch_targets * torch.log_softmax(head, -1), -1).mean() + \
                0.5 * torch.sum(-torch_targets * torch.log_softmax(dist, -1), -1).mean()
            loss.backward()
            torch_agc(torch_model.parameters(), recipe.clip_grad)
            torch_opt.step()
            with torch.no_grad():
                for k, v in torch_model.state_dict().items():
                    if v.dtype.is_floating_point:
                        torch_ema[k].mul_(recipe.ema_decay).add_(v, alpha=1 - recipe.ema_decay)
            return loss

        contenders = {"keras": lambda: keras_step(xb, targets).numpy(), "pytorch_eager": torch_step}
        if not args.skip_xla:
            keras_step_xla = make_step(True)
            contenders["keras_xla"] = lambda: keras_step_xla(xb, targets).numpy()
        results[f"train_batch{args.batch}_images_per_s"] = summarize(
            interleave(contenders, args.rounds, 1), args.batch, unit="img/s")

    for key, table in results.items():
        if isinstance(table, dict):
            print(key)
            base = table["pytorch_eager"]["median"]
            for name, row in table.items():
                print(f"  {name:14s} min {row['min']:8.2f}  median {row['median']:8.2f}  max "
                      f"{row['max']:8.2f} {row['unit']}   x{row['median'] / base:.2f} vs PyTorch")
        else:
            print(f"{key}: {table}")
    if args.json:
        from swiftformer_tf.io_utils import write_json
        write_json(args.json, results)
    return 0


def copy_weights(keras_model, torch_model):
    """Keras weights into transformers' SwiftFormer, through the checkpoint transfer's
    official names."""
    import torch

    from swiftformer_tf.checkpoints import RENAMES, export_state_dict
    official = export_state_dict(keras_model.weights)
    with torch.no_grad():
        for hf_key, tensor in torch_model.state_dict().items():
            value = official.get(RENAMES["hf"](hf_key))
            if value is not None:
                tensor.copy_(torch.from_numpy(value.reshape(tuple(tensor.shape)).copy()))


def torch_param_groups(model, weight_decay):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


def torch_agc(parameters, clip, eps=1e-3):
    """timm's adaptive_clip_grad."""
    import torch
    for p in parameters:
        if p.grad is None:
            continue
        dims = tuple(range(1, p.ndim)) if p.ndim > 1 else tuple(range(p.ndim))
        p_norm = p.detach().pow(2).sum(dim=dims, keepdim=True).sqrt().clamp_(min=eps)
        g_norm = p.grad.detach().pow(2).sum(dim=dims, keepdim=True).sqrt()
        max_norm = p_norm * clip
        clipped = p.grad * (max_norm / g_norm.clamp(min=1e-6))
        p.grad.detach().copy_(torch.where(g_norm < max_norm, p.grad, clipped))


if __name__ == "__main__":
    sys.exit(main())
