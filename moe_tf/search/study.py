"""`moe-tf search`: an Optuna study over a base config and a search space; each trial is an ordinary run directory
(`<study>/trial-0003`) trained in this process.

The study lives in a database (default: SQLite in the study directory), so the same command resumes a killed search;
any Optuna RDB URL (`--storage postgresql://...`) lets several machines run trials of one study at once. A trial
whose process died is marked failed (at once if it ran on this machine, after the heartbeat's grace period if on
another) and its parameters are enqueued to run again.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import socket
import time
import warnings

import optuna
import sqlalchemy.exc
import yaml

from moe_tf.config.loader import resolve_config_dict, set_value, validate_config
from moe_tf.errors import ConfigError, Interrupted, MoeTfError, error_line
from moe_tf.run_dir import atomic_write
from moe_tf.search.space import Space, parse_space
from moe_tf.search.summary import summary_table, write_best
from moe_tf.training.early_stopping import lookup_metric

HEARTBEAT_SECONDS = 60  # default `--heartbeat`; another process's trial is taken for dead after 3 missed heartbeats
GRACE_HEARTBEATS = 3
# The URL forms that reach PostgreSQL and MySQL with the drivers SQLAlchemy 2 knows, and the package each needs.
DRIVERS = {
    "postgresql": "psycopg (pip install 'moe-tf[postgres]', psycopg 3)",
    "postgresql+psycopg": "psycopg (pip install 'moe-tf[postgres]', psycopg 3)",
    "postgresql+psycopg2": "psycopg2 (pip install psycopg2-binary)",
    "mysql+pymysql": "pymysql (pip install pymysql)",
}


def search(
    config_path: str,
    space_path: str,
    trials: int,
    study_dir: str,
    overrides=(),
    storage: str | None = None,
    study_name: str | None = None,
    seed: int | None = None,
    export: bool = False,
    verbose: bool = False,
    echo=print,
    heartbeat: int = HEARTBEAT_SECONDS,
) -> dict:
    """Runs trials until the study holds `trials` finished ones (complete or pruned) and none is running in another
    search process. Returns {"study": the optuna Study, "files": {what: path} of the summary and the best config(s)}.

    Args:
        heartbeat: seconds between a running trial's heartbeats; a trial of another process that missed three is
            marked failed and its parameters run again.
    """
    if trials < 1:
        raise ConfigError(f"--trials: expected a number >= 1, got {trials}")
    if heartbeat < 1:
        raise ConfigError(f"--heartbeat: expected a number of seconds >= 1, got {heartbeat}")
    base = resolve_config_dict(config_path, overrides)
    try:
        validate_config(copy.deepcopy(base))
    except ConfigError as e:
        raise ConfigError(f"{config_path}: {e}") from None
    space = parse_space(space_path, base)
    os.makedirs(study_dir, exist_ok=True)
    _check_same_search(study_dir, base, space)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = storage or f"sqlite:///{os.path.abspath(os.path.join(study_dir, 'study.db'))}"
    name = study_name or os.path.basename(os.path.abspath(study_dir))
    db = open_storage(url, heartbeat)
    fresh = name not in optuna.study.get_all_study_names(db)
    study = optuna.create_study(
        storage=db,
        study_name=name,
        load_if_exists=True,
        directions=[d for _, d in space.objectives],
        sampler=_sampler(space, seed),
        pruner=_pruner(space),
    )
    echo(
        f"study {name!r} in {masked(url)} ({'new' if fresh else f'{len(study.trials)} trial(s) so far'}); "
        f"objective: {', '.join(f'{d} {m}' for m, d in space.objectives)}; sampler {space.sampler.type}, "
        f"pruner {space.pruner.type}"
    )
    if fresh:
        study.set_user_attr("metrics", [m for m, _ in space.objectives])
        for params in space.enqueue:
            study.enqueue_trial(params)
    else:
        if seed is not None:  # a resumed study samples on from a seed of its own, not the first trials' again
            study.sampler = _sampler(space, seed + len(study.trials))
        _fail_dead_local_trials(study, db, echo)
    objective = Objective(base, space, study_dir, trials, export, verbose, echo)
    run_trials(study, objective, trials, heartbeat, echo)
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    table = summary_table(study, space)
    echo(table)
    files = write_best(study, space, study_dir, base, table)
    for what, path in files.items():
        echo(f"{what}: {path}")
    echo(
        f"{len(finished)} finished trial(s); compare them: moe-tf compare {study_dir}; "
        f"TensorBoard: tensorboard --logdir {study_dir}"
    )
    return {"study": study, "files": files}


class Objective:
    """One trial: the base config with the trial's parameters, trained into `<study>/trial-NNNN`; its value is the
    objective metric of the final weights on the eval split. Each evaluation reports to the pruner."""

    def __init__(self, base, space: Space, study_dir, trials, export, verbose, echo):
        self.base, self.space, self.study_dir = base, space, study_dir
        self.trials, self.export, self.verbose, self.echo = trials, export, verbose, echo
        self.calls = 0  # trials this process ran

    def __call__(self, trial):
        self.calls += 1
        import keras

        from moe_tf.run import train

        space = self.space
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        params = space.suggest(trial)
        run_name = f"trial-{trial.number:04d}"
        run_dir = os.path.join(self.study_dir, run_name)
        data = copy.deepcopy(self.base)
        for key, value in params.items():
            set_value(data, key, value, origin=f"{space.path}: params.{key}:")
        data.setdefault("experiment", {})["name"] = run_name
        if not self.verbose:
            data.setdefault("logging", {})["progress"] = "none"
        retry = trial.user_attrs.get("retry_of")
        again = f" (trial {retry} again)" if retry is not None else ""
        self.echo(f"trial {trial.number}{again} started: " + ", ".join(f"{k}={_short(v)}" for k, v in params.items()))
        started = time.perf_counter()
        try:
            config = validate_config(data)
        except ConfigError as e:
            trial.set_user_attr("error", str(e))
            self.echo(f"trial {trial.number} failed: this combination is not a valid config: {e}")
            raise
        metric = space.objectives[0][0]
        pruned = []

        def observe(step, summary):
            if space.multi_objective:
                return False
            trial.report(lookup_metric(summary, metric), step)
            if trial.should_prune():
                pruned.append(step)
                return True
            return False

        keras.backend.clear_session()  # the last trial's graphs and layer names go
        try:
            metrics = train(config, run_dir, export=self.export, observer=observe)
        except Interrupted as e:
            trial.study.enqueue_trial(params, user_attrs={"retry_of": trial.number})
            reason = str(e).split(":", 1)[0]
            raise Interrupted(
                f"{reason} in trial {trial.number}: the search stopped; run the same command again to "
                f"resume it (trial {trial.number}'s parameters run again)"
            ) from None
        seconds = time.perf_counter() - started
        values = [lookup_metric(metrics["eval"], m) for m, _ in space.objectives]
        trial.set_user_attr("run_dir", os.path.abspath(run_dir))
        trial.set_user_attr("seconds", seconds)
        trial.set_user_attr("step", metrics["step"])
        atomic_write(
            os.path.join(run_dir, "trial.json"),
            json.dumps(
                {
                    "number": trial.number,
                    "params": params,
                    "values": values,
                    "step": metrics["step"],
                    "pruned_at": pruned[0] if pruned else None,
                    "seconds": seconds,
                },
                indent=2,
            ),
        )
        scores = ", ".join(f"{m} {v:.4f}" for (m, _), v in zip(space.objectives, values))
        if pruned:
            self.echo(f"trial {trial.number} pruned at step {pruned[0]}: {scores} ({seconds:.1f} s)")
            raise optuna.TrialPruned()
        self.echo(f"trial {trial.number} finished: {scores} ({seconds:.1f} s)")
        return values if space.multi_objective else values[0]


def run_trials(study, objective: Objective, trials: int, heartbeat: int, echo) -> None:
    """Runs trials until the study holds `trials` finished ones and none runs elsewhere: a trial of another process
    is waited for, and one that stopped sending heartbeats is marked failed and its parameters run here. At most
    3 × `trials` trials in this process: a space whose combinations keep failing validation ends."""
    waiting = False
    while True:
        with _experimental_allowed():
            optuna.storages.fail_stale_trials(study)  # dead trials of other processes: failed, parameters enqueued
        left = 3 * trials - objective.calls
        if _counted(study) < trials and left > 0:
            study.optimize(
                objective,
                n_trials=left,
                catch=(ConfigError,),
                gc_after_trial=True,
                callbacks=[lambda study, _: _counted(study) >= trials and study.stop()],
            )
            continue
        running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        if not running:
            return
        if not waiting:
            echo(f"waiting for {len(running)} trial(s) running in other search processes")
            waiting = True
        time.sleep(heartbeat)


def open_storage(url: str, heartbeat: int) -> optuna.storages.RDBStorage:
    """The study database at `url`, with heartbeats; a missing driver or a database that cannot be reached is one
    line naming the URL (password masked)."""

    def storage() -> optuna.storages.RDBStorage:
        with _experimental_allowed():
            return optuna.storages.RDBStorage(
                url,
                heartbeat_interval=heartbeat,
                grace_period=GRACE_HEARTBEATS * heartbeat,
                heartbeat_stale_trial_callback=_retry,
            )

    try:
        for wait in (1, 2):
            try:
                return storage()
            except sqlalchemy.exc.IntegrityError:
                # Processes started together on an empty database race to create Optuna's tables: the loser finds
                # them made by the winner when it tries again.
                time.sleep(wait)
        return storage()
    except ImportError:
        scheme = url.split(":", 1)[0]
        need = f"its driver {DRIVERS[scheme]}" if scheme in DRIVERS else "the database driver the URL names"
        forms = ", ".join(f"{form}://" for form in DRIVERS)
        raise MoeTfError(
            f"--storage {masked(url)}: cannot open the study database: {need} is not installed; URL forms that work: "
            f"{forms} (and sqlite:///PATH)"
        ) from None
    except Exception as e:  # noqa: BLE001 - SQLAlchemy's errors for a bad URL or an unreachable server vary
        raise MoeTfError(
            f"--storage {masked(url)}: cannot open the study database: {type(e).__name__}: {error_line(e)}"
        ) from None


@contextlib.contextmanager
def _experimental_allowed():
    """Optuna marks the heartbeat and its stale-trial check experimental: no warning for using them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def masked(url: str) -> str:
    """`url` with its password replaced by ***."""
    return re.sub(r"^([a-z0-9+]+://[^:/@]+):[^@]*@", r"\1:***@", url)


def _counted(study) -> int:
    """Trials finished or under way (on any machine): the search starts no trial past the target."""
    return sum(t.state.name in ("COMPLETE", "PRUNED", "RUNNING") for t in study.trials)


def _retry(study, trial) -> None:
    """A trial whose process stopped sending heartbeats (failed by Optuna's stale-trial check): its parameters are
    enqueued to run again."""
    study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})


def _fail_dead_local_trials(study, db, echo) -> None:
    """Marks failed the running trials of this machine whose process is gone (a killed search), and enqueues their
    parameters again; trials of other machines are left to the heartbeat."""
    host = socket.gethostname()
    study_id = db.get_study_id_from_name(study.study_name)
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if t.user_attrs.get("host") != host or pid is None or _alive(pid):
            continue
        trial_id = db.get_trial_id_from_study_id_trial_number(study_id, t.number)
        db.set_trial_user_attr(trial_id, "error", f"its search process (pid {pid}) died")
        db.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
        _retry(study, t)
        echo(
            f"trial {t.number} was left running by a search process that died (pid {pid}): marked failed; its "
            "parameters run again"
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid != os.getpid()


def _sampler(space: Space, seed):
    if space.sampler.type == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=space.sampler.startup_trials)


def _pruner(space: Space):
    p = space.pruner
    if p.type == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=p.startup_trials, n_warmup_steps=p.warmup_steps)
    if p.type == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=p.min_resource, reduction_factor=p.reduction_factor)
    return optuna.pruners.NopPruner()


def _check_same_search(study_dir: str, base: dict, space: Space) -> None:
    """The first run writes `search.yaml` (the resolved base config and the space); a later run of the same study
    directory must search the same."""
    path = os.path.join(study_dir, "search.yaml")
    current = {"base": base, "space": space.as_dict()}
    if not os.path.exists(path):
        atomic_write(path, yaml.safe_dump(current, sort_keys=False))
        return
    with open(path) as f:
        previous = yaml.safe_load(f)
    for part in ("base", "space"):
        if previous.get(part) != current[part]:
            what = "base config (with --set)" if part == "base" else "search space"
            raise ConfigError(
                f"{study_dir} holds a study with another {what} (see {path}); resume it with the "
                "same --config, --set and --space, or choose another --output-dir"
            )


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
