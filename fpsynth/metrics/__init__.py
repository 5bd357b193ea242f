"""Image-quality, identity and expression metrics (no torchvision).

- ``fid``: Frechet distance (standard formula), streaming feature statistics, aFID (paper 4.2).
- ``inception``: the FID Inception-v3 (2015-12-05), from the .pth state dict or the TorchScript.
- ``pixel``: PSNR and SSIM, batched, matching scikit-image.
- ``vgg``, ``lpips``: VGG16 features; LPIPS v0.1 and the perceptual loss (PL).
- ``identity``, ``privacy``: identity embeddings (dlib default, IR-50), verification, privacy audit.
- ``landmarks``, ``expression``: 68 landmarks of crops; expression-transfer error, asymmetry indices.
- ``networks``, ``suite``: loading the networks; a network that is not configured is reported
  as a ``MissingNetwork`` (file + config key), never replaced by another one.
- ``config``: the settings the report stage embeds (``MetricsConfig``).
"""
