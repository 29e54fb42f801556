"""`moe-tf` command line: train, validate, evaluate, export, gates, compare, search, convert, predict.

Exit codes: 0 success, 1 a runtime or data error, 2 an invalid config or usage, 3 training stopped by SIGINT/SIGTERM
after writing a checkpoint (resume it with the command printed). Errors are one message, no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def _load(args):
    from moe_tf.config.loader import load_config

    config = load_config(args.config, args.set or [])
    return config


def cmd_train(args) -> int:
    from moe_tf.api import Config, train

    config = Config.from_yaml(args.config, args.set or [])
    if args.distill_from:
        config.training.distillation.teacher = os.path.abspath(args.distill_from)  # absolute: --resume finds it
    if args.profile is not None:
        config.training.profile = _profile_window(args.profile, config.training.profile)
    run_dir = args.output_dir or os.path.join(config.experiment.output_dir, config.experiment.name)
    train(
        config,
        output_dir=run_dir,
        resume=args.resume,
        export=not args.no_export,
        init_from=args.init_from,
        overwrite=args.overwrite,
        allow_data_change=args.allow_data_change,
    )
    return 0


def _profile_window(value: str, configured):
    """`--profile [START[:STEPS]]` → a training.profile config (unset parts: the config's, else the defaults)."""
    from moe_tf.config.schema import ProfileConfig
    from moe_tf.errors import ConfigError

    window = configured.model_dump() if configured is not None else {}
    if value:
        start, _, steps = value.partition(":")
        if not start.isdigit() or not (steps.isdigit() or not steps) or (steps and int(steps) < 1):
            raise ConfigError(f"--profile: expected START_STEP or START_STEP:NUM_STEPS (e.g. 20:5), got {value!r}")
        window["start_step"] = int(start)
        if steps:
            window["num_steps"] = int(steps)
    return ProfileConfig(**window)


def cmd_validate(args) -> int:
    from moe_tf.config.loader import to_yaml

    print(to_yaml(_load(args)), end="")
    return 0


def cmd_evaluate(args) -> int:
    from moe_tf.logging.progress import summary_table
    from moe_tf.run import evaluate

    metrics = evaluate(args.run_dir, args.split, args.checkpoint)
    print(json.dumps(metrics, indent=2) if args.json else summary_table(metrics, args.split))
    return 0


def cmd_compare(args) -> int:
    from moe_tf.compare import compare

    print(compare(args.runs, args.metric, args.format), end="")
    return 0


def cmd_search(args) -> int:
    from moe_tf.search.study import search

    study_dir = args.output_dir or os.path.join("runs", "search-" + os.path.splitext(os.path.basename(args.space))[0])
    search(
        args.config,
        args.space,
        args.trials,
        study_dir,
        args.set or [],
        storage=args.storage,
        heartbeat=args.heartbeat,
        study_name=args.study_name,
        seed=args.seed,
        export=args.export,
        verbose=args.verbose,
        echo=lambda line: print(line, flush=True),
    )
    return 0


def cmd_export(args) -> int:
    from moe_tf.export.tflite import compression_table
    from moe_tf.run import export, export_tflite

    if args.format == "saved_model":
        if args.quantize != "none":
            from moe_tf.errors import ConfigError

            raise ConfigError("--quantize applies to --format tflite; a SavedModel keeps the trained float weights")
        print(f"exported SavedModel: {export(args.run_dir, args.output, args.checkpoint)}")
        return 0
    out_dir, entry = export_tflite(args.run_dir, args.output, args.checkpoint, args.quantize)
    print(compression_table(entry, args.quantize))
    print(f"wrote {os.path.join(out_dir, entry['file'])} and {os.path.join(out_dir, 'compression.json')}")
    return 0


def cmd_gates(args) -> int:
    from moe_tf.gate_usage import gate_usage, usage_table

    usage = gate_usage(args.run_dir, args.split, args.checkpoint)
    print(usage_table(usage, args.top))
    print(f"wrote {usage['csv']} and {usage['png']}")
    return 0


def cmd_convert(args) -> int:
    from moe_tf.config.loader import resolve_config_dict, validate_config
    from moe_tf.convert import convert

    raw = resolve_config_dict(args.config, args.set or [])
    path = convert(validate_config(raw), args.output, args.shards, raw=raw)
    print(f"wrote {path}: train it with  moe-tf train --config {path}")
    return 0


def cmd_predict(args) -> int:
    from moe_tf.errors import MoeTfError
    from moe_tf.export.predict import predict
    from moe_tf.run_dir import atomic_write

    if args.output:
        parent = os.path.dirname(os.path.abspath(args.output))
        if not os.path.isdir(parent):
            raise MoeTfError(f"--output {args.output}: the directory {parent} does not exist")
        if os.path.isdir(args.output):
            raise MoeTfError(f"--output {args.output} is a directory; give a file path")
    rows = predict(args.export_dir, args.input, args.batch_size)
    text = "\n".join(json.dumps(row) for row in rows) + "\n"
    if args.output:
        atomic_write(args.output, text)
        print(f"wrote {len(rows)} predictions to {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def version_line() -> str:
    """moe-tf's version and the TensorFlow, Keras and Python it runs on (read without importing TensorFlow)."""
    from importlib.metadata import PackageNotFoundError, version

    from moe_tf import __version__

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    python = ".".join(map(str, sys.version_info[:3]))
    return f"moe-tf {__version__} (TensorFlow {installed('tensorflow')}, Keras {installed('keras')}, Python {python})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="moe-tf", description="Multi-task mixture-of-experts training.")
    parser.add_argument("--version", action="version", version=version_line())
    parser.add_argument(
        "--verbose",
        dest="native_logs",
        action="store_true",
        help="show TensorFlow's native start-up and information logs, hidden by default (also: MOE_TF_VERBOSE=1)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p, positional=False):
        if positional:
            p.add_argument("config", help="experiment YAML")
        else:
            p.add_argument("--config", "-c", required=True, help="experiment YAML")
        p.add_argument(
            "--set",
            action="append",
            metavar="KEY=VALUE",
            help="override a config value, e.g. --set training.epochs=5 (repeatable)",
        )

    p = sub.add_parser("train", help="train a config into a run directory")
    with_config(p)
    p.add_argument("--output-dir", "-o", help="run directory (default: experiment.output_dir/experiment.name)")
    p.add_argument("--resume", action="store_true", help="continue the run in --output-dir from its last checkpoint")
    p.add_argument(
        "--allow-data-change",
        action="store_true",
        help="--resume: read a streamed source's changed files again (refused by default, the change named)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing run in --output-dir; the old one is deleted only once the new run has "
        "written its first checkpoint",
    )
    p.add_argument(
        "--init-from",
        metavar="RUN_DIR",
        help="start from a trained run's variables, matched by name (shared parts and the tasks it had; "
        "new tasks start fresh)",
    )
    p.add_argument(
        "--distill-from",
        metavar="RUN_DIR",
        help="train on a trained run's soft targets as well as the labels (the tasks it shares with "
        "this config; training.distillation sets temperature and alpha)",
    )
    p.add_argument(
        "--no-export",
        action="store_true",
        help="skip the SavedModel at the end (export it later with `moe-tf export RUN_DIR`)",
    )
    p.add_argument(
        "--profile",
        nargs="?",
        const="",
        metavar="START[:STEPS]",
        help="trace steps START … START+STEPS-1 with the TensorFlow profiler into the run's TensorBoard "
        "logs (default 10:5, or training.profile's); see them in TensorBoard's Profile tab",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("validate", help="check a config; print the resolved config")
    with_config(p, positional=True)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("evaluate", help="evaluate a trained run on a split")
    p.add_argument("run_dir")
    p.add_argument("--split", choices=["eval", "test"], default="test")
    p.add_argument(
        "--checkpoint", choices=["best", "latest"], default="best", help="best (if early stopping kept one) or latest"
    )
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("export", help="export a trained run as a SavedModel, or as TFLite (quantised)")
    p.add_argument("run_dir")
    p.add_argument("--format", choices=["saved_model", "tflite"], default="saved_model")
    p.add_argument(
        "--quantize",
        default="none",
        metavar="{none,dynamic,float16,int8}",
        help="tflite: none (float32), dynamic (int8 weights), float16 (float16 weights), int8 (weights "
        "and activations, calibrated on training examples)",
    )
    p.add_argument("--output", help="export directory (default: <run_dir>/export; tflite: <run_dir>/tflite)")
    p.add_argument("--checkpoint", choices=["best", "latest"], default="best")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("gates", help="which experts each task and true class uses (CSV, PNG and a table)")
    p.add_argument("run_dir")
    p.add_argument("--split", choices=["eval", "test"], default="test")
    p.add_argument("--checkpoint", choices=["best", "latest"], default="best")
    p.add_argument("--top", type=int, default=3, help="experts listed per row in the terminal table")
    p.set_defaults(func=cmd_gates)

    p = sub.add_parser("compare", help="one row per run: differing config keys, test metrics, steps, examples/s")
    p.add_argument(
        "runs",
        nargs="+",
        metavar="RUN_OR_GLOB",
        help="run directories, globs (quote them), or a directory of runs such as runs/",
    )
    p.add_argument(
        "--metric",
        help="sort by this (best first): TASK/METRIC or loss (test split), or "
        "eval/TASK/METRIC (the last evaluation); default: the first task's first metric",
    )
    p.add_argument("--format", choices=["table", "csv", "markdown"], default="table")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("search", help="search config values with Optuna; each trial is a run directory")
    with_config(p)
    p.add_argument("--space", required=True, help="search space YAML: params (any config key), metric, pruner, ...")
    p.add_argument(
        "--trials",
        type=int,
        required=True,
        help="finished trials (complete or pruned) the study should hold; a resumed or shared study "
        "counts the ones it already has",
    )
    p.add_argument(
        "--output-dir",
        "-o",
        help="study directory: trial-NNNN run directories, study.db, best.yaml "
        "(default: runs/search-<space file name>)",
    )
    p.add_argument(
        "--storage",
        help="an Optuna RDB URL shared by several machines (postgresql://..., mysql+pymysql://...); "
        "default: sqlite:///<study directory>/study.db",
    )
    p.add_argument("--study-name", help="the study's name in --storage (default: the study directory's name)")
    p.add_argument(
        "--heartbeat",
        type=int,
        default=60,
        metavar="SECONDS",
        help="a running trial's heartbeat interval; another process's trial silent for three is marked failed and "
        "its parameters run again (default 60)",
    )
    p.add_argument("--seed", type=int, help="seed the sampler: the same command samples the same trials")
    p.add_argument(
        "--export",
        action="store_true",
        help="export each trial's SavedModel (default: checkpoints only; export the one you pick with moe-tf export)",
    )
    p.add_argument("--verbose", action="store_true", help="print each trial's training progress")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser(
        "convert", help="write a config's sources as sharded TFRecord files and a config that trains on them"
    )
    with_config(p)
    p.add_argument("--output", "-o", required=True, help="a new directory: <source>/<split>-*.tfrecord.gz, config.yaml")
    p.add_argument("--shards", type=int, default=8, help="files per split (at most one per example)")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("predict", help="predict every task with an exported SavedModel")
    p.add_argument("export_dir", help="an export directory (or a run directory)")
    p.add_argument(
        "--input",
        "-i",
        required=True,
        help=".npz with one array per input name, .npy for a one-input model (e.g. uint8 images "
        "[N, H, W(, C)]), .txt with one text per line, .tsv/.csv with a header naming inputs, or "
        ".jsonl with one {input: value} object per line",
    )
    p.add_argument("--output", help="write JSON lines here instead of stdout")
    p.add_argument("--batch-size", type=int, default=256)
    p.set_defaults(func=cmd_predict)
    return parser


# Commands that never load TensorFlow (the others load it first, without its start-up chatter).
WITHOUT_TENSORFLOW = {"compare"}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from moe_tf.errors import MoeTfError
    from moe_tf.native_logs import quiet_tensorflow

    try:
        if args.command in WITHOUT_TENSORFLOW:
            return args.func(args)
        with quiet_tensorflow(args.native_logs):
            return args.func(args)
    except MoeTfError as e:
        print(f"moe-tf {args.command}: {e.label}: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"moe-tf {args.command}: interrupted; checkpoints already written are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
