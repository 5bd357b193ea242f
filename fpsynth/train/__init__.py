"""The training stage: loop, EMA, checkpoints, distributed set-up."""
