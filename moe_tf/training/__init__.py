"""Training: strategies, the distributed loop, checkpoints and early stopping. Entry point: `run`."""


def run(config, run_dir, resume=False, export=True):
    """Trains `config` into `run_dir`; returns the test metrics (see moe_tf.training.job.run_job)."""
    from moe_tf.training.job import run_job

    return run_job(config, run_dir, resume=resume, export=export)
