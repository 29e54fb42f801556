"""A trained run restored for evaluation and inference in Python (`moe_tf.load`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moe_tf.config.objects import Config, as_config
from moe_tf.errors import ConfigError


@dataclass
class Trained:
    """A trained run restored for evaluation and inference (`load`).

    Attributes:
        run_dir: the run directory.
        config: its config.
        model: the Keras model (raw named features in; {"outputs": {task: logits}, "gates": ...} out).
        checkpoint: the checkpoint its weights come from.
    """

    run_dir: str
    config: Config
    model: Any
    checkpoint: str
    parts: Any = field(repr=False)

    def evaluate(self, split: str = "test") -> dict:
        """Exact metrics on "test" or "eval" (what `moe-tf evaluate` prints)."""
        from moe_tf.run import evaluation

        if split not in ("eval", "test"):
            raise ConfigError(f"split: expected 'eval' or 'test', got {split!r}")
        return evaluation(self.parts, self.checkpoint, split)

    def predict(self, inputs: Mapping[str, Any] | str | os.PathLike, batch_size: int = 256) -> dict[str, np.ndarray]:
        """Every task whose inputs are given → {task: probabilities [N, classes]} (binary tasks: [N, 2]; regression:
        values [N, 1]).

        Args:
            inputs: {input name: array of N examples} of raw features (uint8 images, strings, ids, numbers), or a
                file `moe-tf predict` reads (.npz, .npy, .txt, .tsv/.csv, .jsonl).
        """
        return self._per_task(inputs, batch_size, "outputs")

    def gate_weights(self, inputs: Mapping[str, Any] | str | os.PathLike, batch_size: int = 256) -> dict:
        """{task: the weights of the gate it reads, [N, experts]} (gated architectures; experts labelled by
        `self.model.mixture.expert_names()`)."""
        if not self.model.task_gates():
            raise ConfigError(f"architecture {self.config.model.architecture.type!r} has no gates")
        return self._per_task(inputs, batch_size, "gates")

    def export(self, output: str | os.PathLike | None = None) -> str:
        """Writes the SavedModel (default `<run_dir>/export`) → its directory."""
        from moe_tf.export.saved_model import export_model

        out = os.fspath(output) if output else os.path.join(self.run_dir, "export")
        return export_model(self.model, self.config, self.parts.data, out)

    def _per_task(self, inputs, batch_size: int, what: str) -> dict[str, np.ndarray]:
        import tensorflow as tf

        from moe_tf.errors import DataError
        from moe_tf.export.predict import check_inputs, read_inputs
        from moe_tf.export.saved_model import task_outputs

        if not isinstance(batch_size, int) or batch_size < 1:
            raise DataError(f"batch_size: expected an integer >= 1, got {batch_size!r}")
        specs = {name: spec.to_dict() for name, spec in self.parts.data.features.items()}
        if isinstance(inputs, str | os.PathLike):
            arrays = read_inputs(os.fspath(inputs), specs)
        else:
            unknown = sorted(set(inputs) - set(specs))
            if unknown:
                raise DataError(f"inputs: {unknown} not among the model's inputs {sorted(specs)}")
            arrays = check_inputs("inputs", {k: np.asarray(v) for k, v in inputs.items()}, specs)
        tasks = [t for t in self.parts.data.tasks if set(t.features) <= set(arrays)]
        if not tasks:
            needs = {t.name: t.features for t in self.parts.data.tasks}
            raise DataError(f"no task can be computed from the inputs {sorted(arrays)}; each task needs: {needs}")
        gates = self.model.task_gates()
        if what == "gates":
            tasks = [t for t in tasks if t.name in gates]
        groups: dict[tuple, list] = {}  # the tasks computed from one set of inputs: one model call a batch
        for t in tasks:
            groups.setdefault(tuple(t.features), []).append(t)
        n = len(next(iter(arrays.values())))
        if n == 0:
            raise DataError("inputs: no examples (arrays of length 0)")
        out: dict[str, list] = {t.name: [] for t in tasks}
        for start in range(0, n, batch_size):
            for names, group in groups.items():
                result = self.model(
                    {f: tf.constant(arrays[f][start : start + batch_size]) for f in names}, training=False
                )
                for t in group:
                    if what == "outputs":
                        out[t.name].append(task_outputs(t, result["outputs"][t.name])[0].numpy())
                    else:
                        out[t.name].append(np.asarray(result["gates"][gates[t.name]]["weights"]))
        return {name: np.concatenate(parts) for name, parts in out.items()}


def load(run_dir: str | os.PathLike, checkpoint: str = "best") -> Trained:
    """Restores a trained run: its config, model and weights ("best" if early stopping kept one, else the latest;
    or "latest")."""
    from moe_tf.components import restore_components

    if checkpoint not in ("best", "latest"):
        raise ConfigError(f"checkpoint: expected 'best' or 'latest', got {checkpoint!r}")
    parts, path = restore_components(os.fspath(run_dir), checkpoint)
    return Trained(os.fspath(run_dir), as_config(parts.config), parts.model, path, parts)
