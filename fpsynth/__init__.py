"""fpsynth: synthetic facial-palsy datasets with CCFExp (cycle cross-fusion diffusion)."""

__version__ = "0.1.0"
