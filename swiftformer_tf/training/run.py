"""One training run as ``swiftformer-train`` starts it: the data, the model (random, from
--init, or the QAT form of a trained model), the teacher, the run folder (claimed for one
run), the trainer, the export and the summary. ``args`` holds the tool's parsed flags
(``swiftformer_tf.cli.train.parse_args``)."""

from __future__ import annotations

import dataclasses
import json
import os
import sys

from swiftformer_tf.errors import SwiftFormerError


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
    from swiftformer_tf.loading import read_keras_file

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
    """Runs the training ``args`` describe; returns the tool's exit status."""
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
    from swiftformer_tf.io_utils import write_json
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
            raise SwiftFormerError(refusal)
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
    """Quantization-aware fine-tuning (:mod:`swiftformer_tf.export.qat`): the int8 export
    form of the --init model, ranges calibrated on training images, distilled from it."""
    import numpy as np

    from swiftformer_tf import SwiftFormer, load
    from swiftformer_tf.export import qat
    from swiftformer_tf.training import data as data_lib
    size = args.recipe.image_size
    source = load(args.init, variant=args.variant, num_classes=num_classes)
    if source.load_report and source.load_report.fresh_heads:
        raise SwiftFormerError(f"--init {args.init}: its heads are for another class "
                               f"count than the data's {num_classes}; --qat fine-tunes a model "
                               f"trained on these classes")
    if source.reparameterized:
        raise SwiftFormerError(f"--init {args.init}: is an export form already; give the "
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


