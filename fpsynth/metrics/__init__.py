"""Image-quality, identity and expression metrics (no torchvision)."""
