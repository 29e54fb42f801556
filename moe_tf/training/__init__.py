"""Training: strategies, the distributed loop, checkpoints and early stopping. Entry point: `run`."""


def run(config, run_dir, resume=False):
    """Trains `config` into `run_dir` (see moe_tf.training.run_job)."""
    from moe_tf.training.job import run_job

    return run_job(config, run_dir, resume=resume)
