#!/usr/bin/env python3
"""Train SwiftFormer with the official recipe (AdamW, cosine schedule with warm-up, AGC,
label smoothing, EMA, RandAugment / colour jitter, random erasing, mixup / cutmix, hard
distillation) on tf.distribute, with resumable step checkpoints.

    python training/train.py --variant XS --data tfds:imagenet2012 --data-dir ~/tensorflow_datasets
    python training/train.py --variant XS --data folder:/data/my_classes --init SwiftFormer_XS.pth
    python training/train.py --variant XS --data synthetic --epochs 10 --image-size 64 --output runs/demo

Quantization-aware fine-tuning of a trained model for the int8 export (then
``tflite/convert.py --weights DIR/model.keras --quantize int8``):

    python training/train.py --init runs/demo/model.keras --qat --data synthetic --image-size 64 --output runs/demo_qat
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if "--deterministic" in sys.argv:  # must precede TensorFlow's import: oneDNN's fused
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"  # kernels are outside its determinism switch

from swiftformer_tf.training.cluster import STRATEGIES  # noqa: E402
from swiftformer_tf.training.recipe import Recipe, qat_recipe, recipe_for  # noqa: E402
from swiftformer_tf.io_utils import number  # noqa: E402
from swiftformer_tf.variants import MAX_CLASSES, VARIANTS, get_config  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="train.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", default="XS", help="XS, S, L1, L3 or a JSON config "
                   "('{\"depths\": [...], \"widths\": [...]}')")
    p.add_argument("--data", required=True,
                   help="tfds:NAME[:SPLIT], folder:DIR (class subfolders, or train/ and val/) "
                        "or synthetic[:COUNT] (shapes and textures generated in code)")
    p.add_argument("--data-dir", help="TFDS data dir")
    p.add_argument("--val-split", type=number(minimum=0, below=1), default=0.1,
                   help="validation fraction for a folder without train/ and val/")
    p.add_argument("--strategy", default="auto", choices=STRATEGIES,
                   help="auto: all local GPUs (mirrored) or one device; multiworker: one "
                        "process per machine, the cluster in TF_CONFIG (--batch-size is per "
                        "replica); tpu: a TPU VM or pod")
    p.add_argument("--cluster-timeout", type=number(above=0), default=300.0,
                   help="seconds to wait for every TF_CONFIG worker to join (multiworker)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "mixed_bfloat16", "mixed_float16"])
    p.add_argument("--jit", action="store_true", help="XLA-compile the train step")
    p.add_argument("--teacher", default="none",
                   help="regnety160 (needs --teacher-weights), PATH.keras, or none")
    p.add_argument("--teacher-weights", help="weights file for --teacher regnety160")
    p.add_argument("--init", help="imagenet (the official ImageNet-1k weights of --variant, "
                                  "downloaded once and verified), a checkpoint the converter "
                                  "reads, or .keras; heads are dropped when the class count "
                                  "differs")
    p.add_argument("--qat", action="store_true",
                   help="quantization-aware fine-tuning of the --init model's int8 export "
                        "form, distilled from the --init model's logits; its own defaults: 1 "
                        "epoch at lr 5e-5, no warm-up, AGC or mixing (flags still override)")
    p.add_argument("--qat-calibration", type=number(minimum=1, whole=True), default=256,
                   metavar="N",
                   help="training images (eval transform) that calibrate the QAT ranges")
    p.add_argument("--num-classes", type=number(minimum=1, maximum=MAX_CLASSES, whole=True),
                   help="default: the dataset's")
    p.add_argument("--output", default="runs/swiftformer")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="start over in an --output that holds another run (deletes its files)")
    p.add_argument("--save-every", type=number(minimum=0, whole=True), default=500,
                   help="checkpoint every N steps (0: none between the epochs' ends)")
    p.add_argument("--seed", type=number(minimum=0, whole=True), default=0)
    p.add_argument("--no-augment", action="store_true", help="eval transform only (debugging)")
    p.add_argument("--sync-bn", action="store_true",
                   help="BatchNorm statistics over all replicas (official: per replica)")
    p.add_argument("--deterministic", action="store_true", help="deterministic TF ops")
    p.add_argument("--max-steps", type=number(minimum=1, whole=True),
                   help="stop after this many steps in total")
    p.add_argument("--bad-images", choices=["stop", "skip"], default="stop",
                   help="an image file of a folder dataset that cannot be decoded: stop naming "
                        "it (default), or check every file first and leave such files out "
                        "(named)")
    defaults = Recipe()
    for field in dataclasses.fields(Recipe):
        flag = "--" + field.name.replace("_", "-")
        if field.type in ("bool", bool):
            p.add_argument(flag, type=lambda v: v.lower() in ("1", "true", "yes"), default=None,
                           metavar="true|false", help="(official default per variant)")
        else:
            whole = isinstance(getattr(defaults, field.name), int)
            p.add_argument(flag, type=number(whole=whole), default=None,
                           help="(official default per variant)")
    args = p.parse_args(argv)
    if args.variant.strip().startswith("{"):
        try:
            args.variant = json.loads(args.variant)
            get_config(args.variant)
        except (ValueError, TypeError) as err:
            p.error(f"--variant: not a valid JSON config ({' '.join(str(err).split())[:200]})")
    elif args.variant.upper() not in VARIANTS:
        p.error(f"--variant must be one of {', '.join(VARIANTS)} or a JSON config")
    else:
        args.variant = args.variant.upper()
    name = args.variant if isinstance(args.variant, str) else "custom"
    recipe = qat_recipe(name) if args.qat else recipe_for(name)
    if args.qat and not args.init:
        p.error("--qat fine-tunes a trained model: give it with --init MODEL.keras (or a "
                "checkpoint)")
    if args.qat and args.teacher != "none":
        p.error("--qat distils from the --init model; leave --teacher out")
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(Recipe)
                 if getattr(args, f.name) is not None}
    args.recipe = dataclasses.replace(recipe, **overrides)
    if args.recipe.epochs < 1 or args.recipe.batch_size < 1 or args.recipe.image_size < 16:
        p.error("--epochs and --batch-size must be positive, --image-size at least 16")
    return args


def build_teacher(args, num_classes):
    import keras
    if args.teacher == "none":
        return None
    if args.teacher == "regnety160":
        if not args.teacher_weights or not os.path.isfile(args.teacher_weights):
            raise ValueError("--teacher regnety160 needs --teacher-weights FILE (Keras RegNetY160 "
                             "weights; nothing is downloaded), or use --teacher PATH.keras / none")

        def make():
            teacher = keras.applications.RegNetY160(weights=args.teacher_weights,
                                                    classes=num_classes)
            teacher.trainable = False
            teacher._expects_0_255 = True  # keras.applications RegNet normalises in-graph
            return teacher
        return make
    if not os.path.isfile(args.teacher):
        raise ValueError(f"{args.teacher}: teacher model not found")
    from swiftformer_tf.model import read_keras_file

    def load():
        try:
            teacher = read_keras_file(args.teacher, any_model=True)
        except ValueError as err:
            raise ValueError(f"--teacher {err}") from None
        teacher.trainable = False
        return teacher
    load()  # once now: a file that cannot be a teacher stops the run before its folder exists
    return load


def _class_names(split, num_classes):
    """The dataset's class names for the model to keep (its .keras file then knows its labels,
    and a TFLite export with --metadata writes them), or None where they do not fit."""
    from swiftformer_tf.model import check_class_names
    try:
        return check_class_names(list(split.class_names), num_classes, True)
    except ValueError as err:
        print(f"warning: the model will not keep the dataset's class names ({err})",
              file=sys.stderr)
        return None


RUN_IDENTITY = ("variant", "data", "num_classes", "recipe", "seed", "qat")


def claim_run_folder(output, run_config, resume, overwrite):
    """A run folder belongs to one run: its log, checkpoints and exports are never mixed with
    another's. Returns why ``output`` cannot take this run, or None (after clearing it for
    ``overwrite``)."""
    if os.path.exists(output) and not os.path.isdir(output):
        return f"--output {output}: is a file, not a folder"
    if not os.path.isdir(output) or not os.listdir(output):
        return None
    config_path = os.path.join(output, "run_config.json")
    if not os.path.isfile(config_path):
        return (f"--output {output}: not empty and not a run folder (no run_config.json); "
                f"choose a new or empty folder")
    try:
        with open(config_path) as f:
            previous = json.load(f)
        if not isinstance(previous, dict):
            raise ValueError(f"a {type(previous).__name__}, not an object")
    except (OSError, ValueError) as err:
        return f"{config_path}: unreadable ({err}); this folder's run cannot be identified"
    if resume:
        for key in RUN_IDENTITY:
            if previous.get(key) != run_config.get(key):
                return (f"--resume with a different {key} than the run in {output} "
                        f"({previous.get(key)!r} there)")
        return None
    if overwrite:
        import shutil
        shutil.rmtree(output)
        return None
    return (f"--output {output}: holds a run already; --resume continues it, --overwrite "
            f"starts over (deleting its files), or choose another --output")


def train(args):
    from swiftformer_tf.io_utils import import_tensorflow_quietly
    from swiftformer_tf.training import cluster
    tf = import_tensorflow_quietly(start_runtime=False)
    # before any TensorFlow op: collectives must be configured at program start
    strategy = cluster.make_strategy(args.strategy, cluster_timeout=args.cluster_timeout)
    import keras
    from tqdm import tqdm

    from swiftformer_tf import SwiftFormer, load
    from swiftformer_tf.training import data as data_lib

    print(f"strategy: {cluster.describe(strategy)}")
    recipe = args.recipe
    if args.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(args.seed)
    if args.precision != "fp32":
        keras.mixed_precision.set_global_policy(args.precision)
    train, val = data_lib.resolve(args.data, args.data_dir, args.val_split, args.seed)

    def checking(*splits):
        total = sum(len(split.paths or ()) for split in splits)
        return lambda it: tqdm(it, total=total, unit="img", desc="checking image files")
    if args.bad_images == "skip":
        train = data_lib.without_unreadable(train, checking(train))
        val = data_lib.without_unreadable(val, checking(val))
    num_classes = args.num_classes or train.num_classes
    if args.qat:
        return train_qat(args, strategy, train, val, num_classes, checking)
    teacher_fn = build_teacher(args, num_classes)
    model_options = dict(num_classes=num_classes, drop_path_rate=recipe.drop_path,
                         distillation=teacher_fn is not None or args.teacher == "none",
                         input_shape=(recipe.image_size, recipe.image_size, 3),
                         class_names=_class_names(train, num_classes))
    # --init: read and checked (strictly, by name) now, so a bad file fails before any
    # training; the replicated model takes its weights in model_fn.
    init = load(args.init, variant=args.variant, **model_options) if args.init else None
    if init is not None:
        print(f"init: {args.init}: {init.load_report or 'all weights of the .keras file'}"
              + (f" (heads re-initialised for {num_classes} classes)"
                 if init.load_report and init.load_report.fresh_heads else ""))

    def model_fn():
        model = SwiftFormer(args.variant, **model_options)
        if init is not None:
            model.set_weights(init.get_weights())  # same constructor options: same variables
        return model

    return run_training(args, strategy, train, val, num_classes, model_fn, teacher_fn, checking)


def run_training(args, strategy, train, val, num_classes, model_fn, teacher_fn, checking):
    """Trains ``model_fn()``'s model in ``args.output`` (claimed for this run), exports it
    and reports; shared by training and quantization-aware fine-tuning."""
    from swiftformer_tf.io_utils import CommandError, write_json
    from swiftformer_tf.training import cluster
    from swiftformer_tf.training import data as data_lib
    from swiftformer_tf.training.trainer import RunOptions, Trainer
    chief = cluster.is_chief(strategy)
    recipe = args.recipe
    augmentation = data_lib.Augmentation(
        rand_augment=recipe.rand_augment, color_jitter=recipe.color_jitter,
        crop_scale_min=recipe.crop_scale_min, reprob=recipe.reprob, mixup=recipe.mixup,
        cutmix=recipe.cutmix, mixup_switch_prob=recipe.mixup_switch_prob,
        smoothing=recipe.smoothing, enabled=not args.no_augment)
    options = RunOptions(output=args.output, epochs=recipe.epochs, batch_size=recipe.batch_size,
                         image_size=recipe.image_size, seed=args.seed, save_every=args.save_every,
                         jit=args.jit, max_steps=args.max_steps)
    run_config = {"variant": args.variant, "data": args.data, "num_classes": num_classes,
                  "recipe": dataclasses.asdict(recipe), "seed": args.seed,
                  "teacher": args.teacher, "replicas": strategy.num_replicas_in_sync}
    if args.qat:
        run_config.update(qat=True, init=args.init)
    if chief:  # the other workers of a cluster never touch the run folder
        refusal = claim_run_folder(args.output, run_config, args.resume, args.overwrite)
        if refusal:
            raise CommandError(refusal)
        os.makedirs(args.output, exist_ok=True)
        write_json(os.path.join(args.output, "run_config.json"), run_config)
    trainer = Trainer(model_fn, recipe, train, val, options, augmentation, strategy,
                      teacher_fn, sync_batchnorm=args.sync_bn)
    try:
        if args.resume:
            restored = trainer.restore()
            print(f"resumed from {restored} at step {int(trainer.step.numpy())}" if restored
                  else "no checkpoint to resume from; starting afresh")
        with data_lib.naming_unreadable(train, val, progress=checking(train, val)):
            result = trainer.fit()
            paths = trainer.export()
            final = trainer.evaluate()
            ema = trainer.evaluate(use_ema=True)
    except cluster.lost_peer_errors() as err:
        lines = [line.strip() for line in err.message.splitlines() if line.strip()]
        detail = next((line for line in lines if "unhealthy" in line or "heartbeat" in line),
                      lines[-1] if lines else type(err).__name__)
        raise cluster.ClusterError(
            f"another worker of the cluster stopped or cannot be reached ({detail[:200]}); "
            f"restart every worker with --resume to continue from the last checkpoint in "
            f"{args.output}") from None
    finally:
        trainer.close()
    if not chief:
        print(f"done: worker {strategy.task.index}, {result['steps']} steps (the chief "
              f"writes {args.output})")
        return 0
    summary = {"steps": result["steps"], "seconds": round(result["seconds"], 1),
               "images_per_second": result["images_per_second"],
               "val_top1": final.get("top1"), "val_top5": final.get("top5"),
               "ema_val_top1": ema.get("top1"), **paths}
    write_json(os.path.join(args.output, "summary.json"), summary)
    top1 = f"{100 * final['top1']:.2f}%" if final else "n/a"
    if args.qat:
        top1 += " (int8 simulated)"
    print(f"done: {result['steps']} steps in {result['seconds'] / 60:.1f} min "
          f"({result['images_per_second'] or 0:.1f} img/s), val top-1 {top1}, EMA top-1 "
          f"{100 * ema['top1']:.2f}% -> {paths['model']}" if ema else f"done -> {paths['model']}")
    return 0


def train_qat(args, strategy, train, val, num_classes, checking):
    """Quantization-aware fine-tuning (:mod:`swiftformer_tf.lite.qat`): the int8 export
    form of the --init model, ranges calibrated on training images, distilled from it."""
    import numpy as np

    from swiftformer_tf import SwiftFormer, load
    from swiftformer_tf.io_utils import CommandError
    from swiftformer_tf.lite import qat
    from swiftformer_tf.training import data as data_lib
    size = args.recipe.image_size
    source = load(args.init, variant=args.variant, num_classes=num_classes)
    if source.load_report and source.load_report.fresh_heads:
        raise CommandError(f"--init {args.init}: its heads are for another class count "
                           f"than the data's {num_classes}; --qat fine-tunes a model trained "
                           f"on these classes")
    if source.reparameterized:
        raise CommandError(f"--init {args.init}: is an export form already; give the "
                           f"trainable float model")
    print(f"init: {args.init}: {source.load_report or 'all weights of the .keras file'}")
    images, batches = [], data_lib.eval_dataset(train, 32, size)
    for batch, _ in batches:
        images.extend(np.asarray(batch))
        if len(images) >= args.qat_calibration:
            break
    images = images[:args.qat_calibration]
    print(f"QAT: int8 export form of {source.name}, ranges calibrated on {len(images)} "
          f"training images")
    options = {k: v for k, v in source.get_config().items() if k not in ("name", "trainable")}

    def float_copy():  # made in the strategy's scope, with the --init weights
        model = SwiftFormer(**options)
        model.set_weights(source.get_weights())
        return model

    def teacher_fn():
        teacher = float_copy()
        teacher.trainable = False
        return teacher

    return run_training(args, strategy, train, val, num_classes,
                        lambda: qat.prepare(float_copy(), images), teacher_fn, checking)


def main(argv=None):
    from swiftformer_tf.io_utils import run_command
    return run_command("train.py", lambda a: train(parse_args(a)), argv)


if __name__ == "__main__":
    sys.exit(main())
