"""moe-tf's training loop vs the same MMoE in a hand-written PyTorch CPU loop, side by side in one process.

The model is configs/multi_fashion_mmoe.yaml (Multi-Fashion, Sener & Koltun's Multi-MNIST recipe): a conv stem
(Conv 10 filters 5×5 `same` → ReLU → 2×2 max-pool → Conv 20 filters 5×5 `same` → ReLU → 2×2 max-pool → flatten),
4 experts of 50 ReLU units, a softmax gate and a linear head per task (`left`, `right`), batch 256, Adam (lr 1e-3,
ε 1e-7 on both sides), loss = the sum of the two tasks' mean cross-entropies. PyTorch gets the same layers, the same
Glorot-uniform/zero initialisation, and the same composites (one epoch of moe-tf's batches, held in memory as uint8
NCHW tensors, reshuffled each pass, scaled to [0, 1] per batch as moe-tf's model does); moe-tf runs its own input
pipeline and loop exactly as `moe-tf train` does (Trainer.fit, without the logging/eval hooks).

After a warm-up each side trains `--steps` steps per repeat; repeats alternate between the sides (the machine is
shared and noisy), each after a pause (`--settle`: the other library's idle threads spin for a while after its last
op and would slow this one), and medians are compared. The last line is
`ratio <moe-tf examples/s / PyTorch examples/s>`.
Needs the optional `bench` extra (`pip install -e ".[bench]"`: CPU PyTorch); tests and CI never import this.

    python benchmarks/peer_pytorch.py [--steps 100] [--repeats 7] [--set KEY=VALUE ...] [--profile-steps 20]
        [--name peer_pytorch]
    TF_ENABLE_ONEDNN_OPTS=0 python benchmarks/peer_pytorch.py --name peer_pytorch_no_onednn   # TensorFlow's default
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import moe_tf  # noqa: E402,F401  (first: it sets TensorFlow's environment, as the CLI runs)

# isort: split
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

try:
    import torch  # noqa: E402
except ImportError:  # pragma: no cover
    sys.exit("benchmarks/peer_pytorch.py needs PyTorch: pip install -e '.[bench]'")

from benchmarks.report import train_for, write_results  # noqa: E402
from moe_tf.components import build_components  # noqa: E402
from moe_tf.config.loader import load_config  # noqa: E402
from moe_tf.training.profiling import top_ops, trace_files  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")


class TorchMMoE(torch.nn.Module):
    """The config's model, written as one would by hand in PyTorch (NCHW, experts as one batched matmul)."""

    def __init__(
        self, channels: int, side: int, filters: list[int], kernel: int, experts: int, units: int, tasks: dict[str, int]
    ):
        super().__init__()
        layers, c = [], channels
        for f in filters:
            layers += [torch.nn.Conv2d(c, f, kernel, padding="same"), torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
            c, side = f, side // 2
        self.stem = torch.nn.Sequential(*layers, torch.nn.Flatten())
        features = c * side * side
        self.expert_kernel = torch.nn.Parameter(torch.empty(experts, features, units))
        self.expert_bias = torch.nn.Parameter(torch.zeros(experts, units))
        self.gates = torch.nn.ModuleDict({t: torch.nn.Linear(features, experts) for t in tasks})
        self.heads = torch.nn.ModuleDict({t: torch.nn.Linear(units, n) for t, n in tasks.items()})
        for module in self.modules():  # Keras' defaults: Glorot-uniform kernels, zero biases
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                torch.nn.init.xavier_uniform_(module.weight)
                torch.nn.init.zeros_(module.bias)
        for e in range(experts):
            torch.nn.init.xavier_uniform_(self.expert_kernel.data[e].T)

    def forward(self, x):
        h = self.stem(x)
        experts = torch.relu(torch.einsum("bi,eiu->beu", h, self.expert_kernel) + self.expert_bias)
        out = {}
        for task, gate in self.gates.items():
            g = torch.softmax(gate(h), dim=-1)
            out[task] = self.heads[task](torch.einsum("be,beu->bu", g, experts))
        return out


def torch_trainer(config, images: np.ndarray, labels: dict[str, np.ndarray], classes: dict[str, int], seed: int):
    """A closure training `steps` steps of the PyTorch model per call → examples/s."""
    torch.manual_seed(seed)
    stem = config.model.stem
    model = TorchMMoE(
        images.shape[-1],
        images.shape[1],
        [c.filters for c in stem.layers],
        stem.layers[0].kernel_size,
        config.model.experts.count,
        config.model.experts.units[-1],
        classes,
    )
    opt = config.training.optimizer
    optimizer = torch.optim.Adam(model.parameters(), lr=opt.learning_rate, eps=1e-7)
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    y = {t: torch.from_numpy(v) for t, v in labels.items()}
    batch, n = config.training.batch_size, len(x)
    state = {"order": torch.randperm(n), "at": 0}
    loss_fn = torch.nn.CrossEntropyLoss()

    def run(steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            if state["at"] + batch > n:
                state["order"], state["at"] = torch.randperm(n), 0
            idx = state["order"][state["at"] : state["at"] + batch]
            state["at"] += batch
            out = model(x[idx].float().div_(255.0))  # uint8 pixels → [0, 1], as moe-tf's model does
            loss = sum(loss_fn(out[t], y[t][idx]) for t in out)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return steps * batch / (time.perf_counter() - start)

    return run


def moe_tf_trainer(components):
    """A closure training `steps` steps of moe-tf's loop per call → examples/s."""
    trainer = components.trainer()
    return lambda steps: steps * trainer.global_batch_size / train_for(trainer, steps)


def epoch_arrays(data, batch_size: int, feature: str, tasks: list[str]):
    """One epoch of moe-tf's training batches as numpy arrays (what the PyTorch side trains on)."""
    images, labels = [], {t: [] for t in tasks}
    for inputs, y, _ in data.train_dataset(batch_size, 0, data.steps_per_epoch(batch_size)):
        images.append(inputs[feature].numpy())
        for t in tasks:
            labels[t].append(y[t].numpy())
    return np.concatenate(images), {t: np.concatenate(v) for t, v in labels.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default=os.path.join(ROOT, "configs", "multi_fashion_mmoe.yaml"))
    parser.add_argument("--steps", type=int, default=100, help="training steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="moe-tf config override")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds of pause before each timed run")
    parser.add_argument("--name", default="peer_pytorch", help="results/<name>.txt")
    parser.add_argument(
        "--profile-steps",
        type=int,
        default=20,
        help="after timing, trace this many moe-tf steps and list the top ops (0: no trace)",
    )
    args = parser.parse_args()

    config = load_config(args.config, [f"training.steps={args.steps * (args.repeats + 2)}", *args.set])
    keras.utils.set_random_seed(config.experiment.seed)
    components = build_components(config)  # the composition root, exactly as `moe-tf train` builds
    data = components.data
    tasks = [t.name for t in data.tasks]
    classes = {t.name: t.num_classes for t in data.tasks}
    (feature,) = [name for name in data.features if not name.startswith("_")]
    images, labels = epoch_arrays(data, config.training.batch_size, feature, tasks)

    sides = {
        "moe-tf": moe_tf_trainer(components),
        "PyTorch": torch_trainer(config, images, labels, classes, config.experiment.seed),
    }
    for run in sides.values():
        run(max(10, args.steps // 5))  # warm-up: tracing, pipeline start, allocator
    results = {name: [] for name in sides}
    for _ in range(args.repeats):
        for name, run in sides.items():
            time.sleep(args.settle)  # the other side's worker threads stop spinning before this one starts
            results[name].append(run(args.steps))
    median = {name: statistics.median(v) for name, v in results.items()}
    ratio = median["moe-tf"] / median["PyTorch"]
    lines = [
        f"config {os.path.relpath(args.config, ROOT)}{''.join(' --set ' + s for s in args.set)}: batch "
        f"{config.training.batch_size}, {args.steps} steps x {args.repeats} interleaved repeats; TensorFlow "
        f"{tf.__version__} (Keras {keras.__version__}, TF_ENABLE_ONEDNN_OPTS="
        f"{os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'unset')}), PyTorch "
        f"{torch.__version__} ({torch.get_num_threads()} threads), {os.cpu_count()} CPUs",
        *(
            f"{name:<8} examples/s: " + ", ".join(f"{v:,.0f}" for v in values) + f" (median {median[name]:,.0f})"
            for name, values in results.items()
        ),
    ]
    if args.profile_steps:
        lines.append(
            f"moe-tf's top ops over {args.profile_steps} traced steps (share of op time): "
            + ", ".join(f"{op['type']} {op['share']:.1%}" for op in profile_ops(sides["moe-tf"], args.profile_steps))
        )
    write_results(args.name, [*lines, f"ratio {ratio:.3f}"])


def profile_ops(run, steps: int, count: int = 8) -> list[dict]:
    """Traces `steps` steps of `run` with the TensorFlow profiler → the top op types (moe_tf.training.profiling)."""
    with tempfile.TemporaryDirectory() as trace_dir:
        tf.profiler.experimental.start(trace_dir)
        run(steps)
        tf.profiler.experimental.stop()
        return top_ops(trace_files(trace_dir)[-1], count)


if __name__ == "__main__":
    main()
