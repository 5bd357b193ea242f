"""The authors' published checkpoints (CCFExp.ckpt, dcface_3x3/5x5.ckpt): key maps and import."""
