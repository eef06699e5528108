"""Train the demo run: the SSD sample on a seeded synthetic data set, with the OD API's own training loop.

    .venv/bin/python scripts/train_demo.py --output-dir tests/fixtures/trained_ssd

writes what ``model_main_tf2.py`` leaves behind, plus the data it read:

    OUTPUT/pipeline.config          the SSD sample (128², MobileNet v2 depth 0.35, 3 classes) with the
                                    training settings below; input paths relative to OUTPUT
    OUTPUT/checkpoint, ckpt-N.*     the trainer's checkpoints (every --checkpoint-every steps), slimmed
                                    to the model and the step (the optimizer's slots double the size and
                                    no export reads them)
    OUTPUT/data/train.record        --train-images synthetic images (od_export.source.demo_data); with
                                    --train-record-images N only the first N (int8 calibration draws
                                    from them)
    OUTPUT/data/eval.record         --eval-images held-out images
    OUTPUT/data/label_map.pbtxt
    OUTPUT/training.json            this command's settings, time and evaluation (also printed)

Training is ``object_detection.model_lib_v2.train_loop`` as ``model_main_tf2.py`` runs it:
batch 16, momentum 0.9 with a cosine-decayed learning rate after a linear warm-up,
random horizontal flips; seeded.  Then the OD API's own evaluator
(``model_lib_v2.eager_eval_loop``, COCO detection metrics) scores the last checkpoint
on the held-out record, and the script prints them with the evaluation loss of the
first and the last checkpoint as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from od_export import compat  # noqa: E402
from od_export.source.demo_data import EVAL_RECORD, LABEL_MAP, TRAIN_RECORD, write_demo_dataset  # noqa: E402
from od_export.source.pipeline_config import load_pipeline_config  # noqa: E402

SAMPLE = REPO / "pipeline_samples" / "ssd_mobilenet_v2.config"


def training_config(steps: int, data: Path, learning_rate: float, sample: Path = SAMPLE) -> object:
    """The sample (SSD by default) with the demo's training settings and inputs under ``data``."""
    config = load_pipeline_config(sample)
    train = config.train_config
    train.batch_size, train.num_steps = 16, steps
    train.ClearField("data_augmentation_options")
    train.data_augmentation_options.add().random_horizontal_flip.SetInParent()
    cosine = train.optimizer.momentum_optimizer.learning_rate.cosine_decay_learning_rate
    cosine.learning_rate_base, cosine.total_steps = learning_rate, steps
    cosine.warmup_learning_rate, cosine.warmup_steps = learning_rate / 8, max(1, steps // 20)
    config.eval_config.num_visualizations = 0  # its drawing uses a Pillow API gone since Pillow 10
    for reader, record in ((config.train_input_reader, TRAIN_RECORD), *((r, EVAL_RECORD) for r in config.eval_input_reader)):
        reader.label_map_path = str(data / LABEL_MAP)
        reader.tf_record_input_reader.ClearField("input_path")
        reader.tf_record_input_reader.input_path.append(str(data / record))
    return config


def write_config(config: object, path: Path, relative_to: Path | None = None) -> None:
    from google.protobuf import text_format

    text = text_format.MessageToString(config)
    if relative_to is not None:
        text = text.replace(str(relative_to) + "/", "")
    path.write_text(text, encoding="utf-8")


def train(config_path: Path, model_dir: Path, steps: int, every: int, seed: int) -> float:
    training = compat.import_training()
    tf = training.tf
    tf.keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    with tf.distribute.get_strategy().scope():
        training.model_lib_v2.train_loop(pipeline_config_path=str(config_path), model_dir=str(model_dir),
                                         train_steps=steps, checkpoint_every_n=every, checkpoint_max_to_keep=100,
                                         num_steps_per_iteration=min(100, every), record_summaries=False)
    return time.perf_counter() - start


def evaluate(config_path: Path, prefix: str) -> dict[str, float]:
    """COCO metrics of a checkpoint on the eval record, by the OD API's own evaluator."""
    training = compat.import_training()
    tf = training.tf
    from object_detection.builders import model_builder
    from object_detection.utils import config_util

    configs = config_util.get_configs_from_pipeline_file(str(config_path))
    model = model_builder.build(configs["model"], is_training=False)
    tf.train.Checkpoint(model=model).restore(prefix).expect_partial()
    dataset = training.inputs.eval_input(configs["eval_config"], configs["eval_input_configs"][0], configs["model"],
                                         model=model)
    metrics = training.model_lib_v2.eager_eval_loop(model, configs, dataset, global_step=tf.constant(0, tf.int64))
    return {key: round(float(value), 4) for key, value in metrics.items()}


def write_first_records(source: Path, target: Path, count: int) -> None:
    """The first ``count`` records of a TFRecord file, as a file of their own."""
    tf = compat.import_tensorflow()
    with tf.io.TFRecordWriter(str(target)) as writer:
        for serialized in tf.data.TFRecordDataset(str(source)).take(count):
            writer.write(serialized.numpy())


def slim(model_dir: Path, output: Path, config_path: Path) -> list[str]:
    """Each ``ckpt-N`` rewritten with only the model and the step, plus a relative ``checkpoint`` state file."""
    from od_export.source.model import build_model, create_variables

    tf = compat.import_training().tf
    config = load_pipeline_config(config_path)
    model = build_model(config)
    create_variables(model, config)
    step = tf.Variable(0, dtype=tf.int64)
    names = sorted({p.name.split(".")[0] for p in model_dir.glob("ckpt-*.index")}, key=lambda n: int(n.split("-")[1]))
    for number, name in enumerate(names, 1):
        checkpoint = tf.train.Checkpoint(step=step, model=model)
        checkpoint.restore(str(model_dir / name)).expect_partial()
        checkpoint.save_counter.assign(number)  # as the trainer's CheckpointManager leaves it
        checkpoint.write(str(output / name))
    state = "".join([f'model_checkpoint_path: "{names[-1]}"\n'] + [f'all_model_checkpoint_paths: "{n}"\n' for n in names])
    (output / "checkpoint").write_text(state, encoding="utf-8")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--checkpoint-every", type=int, default=2500)
    parser.add_argument("--learning-rate", type=float, default=0.08)
    parser.add_argument("--train-images", type=int, default=2000)
    parser.add_argument("--eval-images", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample", default=SAMPLE.stem, help="the pipeline_samples/ config to train "
                        f"(default: {SAMPLE.stem})")
    parser.add_argument("--train-record-images", type=int, metavar="N", help="keep only the first N images of "
                        "train.record in OUTPUT (0: none), enough for int8 calibration; the rest is regenerated, "
                        "seeded, by running this script again (default: all)")
    args = parser.parse_args()
    output = args.output_dir.resolve()
    if output.exists():
        sys.exit(f"{output} exists; remove it or choose another --output-dir")
    with tempfile.TemporaryDirectory(prefix="od-export-train-") as scratch:
        scratch = Path(scratch)
        data = scratch / "data"
        start = time.perf_counter()
        write_demo_dataset(data, args.seed, args.train_images, args.eval_images)
        config_path = scratch / "pipeline.config"
        sample = REPO / "pipeline_samples" / f"{args.sample}.config"
        write_config(training_config(args.steps, data, args.learning_rate, sample), config_path)
        seconds = train(config_path, scratch / "model_dir", args.steps, args.checkpoint_every, args.seed)
        output.mkdir(parents=True)
        names = slim(scratch / "model_dir", output, config_path)
        first = evaluate(config_path, str(output / names[0]))
        metrics = evaluate(config_path, str(output / names[-1]))
        keep = args.train_record_images
        shutil.copytree(data, output / "data", ignore=shutil.ignore_patterns(TRAIN_RECORD) if keep is not None else None)
        if keep:
            write_first_records(data / TRAIN_RECORD, output / "data" / TRAIN_RECORD, keep)
        write_config(load_pipeline_config(config_path), output / "pipeline.config", relative_to=scratch)
    report = {"command": " ".join(["scripts/train_demo.py", *sys.argv[1:]]), "steps": args.steps, "train_seconds": round(seconds, 1), "total_seconds": round(time.perf_counter() - start, 1),
              "checkpoints": names, "eval_loss": {names[0]: first["Loss/total_loss"], names[-1]: metrics["Loss/total_loss"]},
              "metrics": metrics}
    (output / "training.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
