"""fpsynth: synthetic facial-palsy datasets with CCFExp (cycle cross-fusion diffusion)."""

from fpsynth.version import __version__

__all__ = ["__version__", "load_model"]


def load_model(path, device="cpu"):  # noqa: ANN001, ANN201 (documented in fpsynth.api)
    """``fpsynth.api.load_model``: an fpsynth checkpoint or a published CCFExp/DCFace file -> Model."""
    from fpsynth.api import load_model as _load_model

    return _load_model(path, device=device)
