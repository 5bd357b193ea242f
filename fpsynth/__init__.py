"""fpsynth: synthetic facial-palsy datasets with CCFExp (cycle cross-fusion diffusion)."""

__version__ = "0.1.0"


def load_model(path, device="cpu"):  # noqa: ANN001, ANN201 (documented in fpsynth.api)
    """``fpsynth.api.load_model``: an fpsynth checkpoint or a published CCFExp/DCFace file -> Model."""
    from fpsynth.api import load_model as _load_model

    return _load_model(path, device=device)
