"""The FID Inception-v3: TensorFlow's 2015-12-05 graph, as ported to PyTorch for FID.

Two published files are accepted (``weights.inception``), recognised by content, not by name:

- ``pt_inception-2015-12-05-6726825d.pth`` (pytorch-fid's release): a state dict with
  torchvision's ``Inception3`` key names (``Conv2d_1a_3x3.conv.weight``, ``Mixed_5b.branch1x1.bn.
  running_mean``, ..., ``fc.weight`` of 1008 classes). Its published checksum is the torch-hub
  sha256 prefix in the name, ``6726825d``, verified on load. The network is rebuilt here with the
  FID patches of that port (TensorFlow's graph differs from torchvision's Inception-v3):
  average pools in the A, C and first E blocks exclude the zero padding from the average, and the
  last E block (``Mixed_7c``) max-pools its pool branch. BatchNorm eps is 1e-3. ``fc.*`` and any
  ``*.num_batches_tracked`` keys are dropped: FID uses the 2048-d pool3 features only.
- ``inception-2015-12-05.pt`` (NVIDIA's TorchScript translation, used by StyleGAN2-ADA and
  clean-fid), read with ``torch.jit.load`` (no Python objects are unpickled). Its forward is
  ``forward(img, return_features=False, use_fp16=False, no_output_bias=False)`` taking images in
  [0, 255] of any size; it resizes to 299x299 itself and returns (N, 2048) pool3 features when
  ``return_features`` is true. No checksum is published for it: its sha256 is recorded, and a
  probe checks that it returns (N, 2048) features.

Both are wrapped to the same interface: ``net(images) -> (N, 2048)`` float32 features, with
``images`` (N, 3, H, W) RGB in [-1, 1] (fpsynth's convention). The state-dict network resizes to
299x299 bilinearly (``align_corners=False``), as pytorch-fid does; [-1, 1] is already the range the
graph expects, so pytorch-fid's (0, 1) -> (-1, 1) step is not needed.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fpsynth.nets.loading import build_on_meta, load_network
from fpsynth.outputs import sha256_file
from fpsynth.weights import LoadRecord, WeightsError, WeightSpec, resolve_path

FEATURE_DIM = 2048
INPUT_SIZE = 299

SPEC = WeightSpec(
    name="inception-v3-fid",
    config_key="weights.inception",
    files=("pt_inception-2015-12-05-6726825d.pth", "inception-2015-12-05.pt"),
    expected_keys=("Conv2d_1a_3x3.conv.weight", "Mixed_7c.branch_pool.conv.weight"),
    source=(
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
        "pt_inception-2015-12-05-6726825d.pth or https://nvlabs-fi-cdn.nvidia.com/"
        "stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
    ),
    sha256="6726825d",  # torch-hub prefix of the .pth (the TorchScript file has none published)
)


class FrozenBatchNorm2d(nn.Module):
    """Inference-only BatchNorm: the stored statistics always, whatever the module's mode."""

    # buffers (channels,), registered in __init__
    weight: torch.Tensor
    bias: torch.Tensor
    running_mean: torch.Tensor
    running_var: torch.Tensor

    def __init__(self, channels: int, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(channels))
        self.register_buffer("bias", torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


class BasicConv2d(nn.Module):
    """conv (no bias) -> BN -> ReLU; keys ``conv.weight``, ``bn.*`` as torchvision's."""

    def __init__(
        self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1, padding: int | tuple[int, int] = 0
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = FrozenBatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    # TensorFlow's SAME average pool divides by the number of real (unpadded) inputs.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_tf_avg_pool(x))], 1)  # (B, 224+pool, H, W)


class InceptionB(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, 3, stride=2)], 1)  # (B, 480+cin, H/2, W/2)


class InceptionC(nn.Module):
    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for layer in (
            self.branch7x7dbl_1,
            self.branch7x7dbl_2,
            self.branch7x7dbl_3,
            self.branch7x7dbl_4,
            self.branch7x7dbl_5,
        ):
            d = layer(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_tf_avg_pool(x))], 1)  # (B, 768, H, W)


class InceptionD(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)  # (B, 512+cin, H/2, W/2)


class InceptionE(nn.Module):
    def __init__(self, cin: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool  # the FID graph's last block max-pools its pool branch
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _tf_avg_pool(x)
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch3x3_2a(b3),
                self.branch3x3_2b(b3),
                self.branch3x3dbl_3a(d),
                self.branch3x3dbl_3b(d),
                self.branch_pool(pooled),
            ],
            1,
        )  # (B, 2048, H, W)


class FIDInceptionV3(nn.Module):
    """Images (N, 3, H, W) in [-1, 1] -> pool3 features (N, 2048)."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, 32)
        self.Mixed_5c = InceptionA(256, 64)
        self.Mixed_5d = InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128)
        self.Mixed_6c = InceptionC(768, 160)
        self.Mixed_6d = InceptionC(768, 160)
        self.Mixed_6e = InceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(2048, max_pool=True)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images.float(), size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # (B, 64, 147, 147)
        x = F.max_pool2d(x, 3, stride=2)  # (B, 64, 73, 73)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))  # (B, 192, 71, 71)
        x = F.max_pool2d(x, 3, stride=2)  # (B, 192, 35, 35)
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))  # (B, 288, 35, 35)
        x = self.Mixed_6a(x)  # (B, 768, 17, 17)
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))
        x = self.Mixed_7a(x)  # (B, 1280, 8, 8)
        x = self.Mixed_7c(self.Mixed_7b(x))  # (B, 2048, 8, 8)
        return x.mean(dim=(2, 3))  # (B, 2048)


class TorchScriptInception(nn.Module):
    """NVIDIA's TorchScript Inception behind the same [-1, 1] -> (N, 2048) interface."""

    def __init__(self, scripted: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.scripted = scripted

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pixels = (images.float() + 1.0) * 127.5  # the script takes [0, 255] and normalises itself
        return self.scripted(pixels, return_features=True).reshape(images.shape[0], -1).float()  # (N, 2048)


def is_torchscript(path: Path) -> bool:
    """TorchScript archives are zip files holding a ``code/`` folder; torch.save files do not."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.split("/")[1:2] == ["code"] for name in archive.namelist())


def load_inception(
    path: Path | None,
    random_init: tuple[str, ...] = (),
    *,
    verify_checksum: bool = True,
    seed: int = 0,
) -> tuple[nn.Module, LoadRecord]:
    """The FID network from ``weights.inception`` (either published file), in eval mode.

    ``verify_checksum`` checks the .pth against its published sha256 prefix; turn it off only for
    a copy re-saved in another format. Raises :class:`~fpsynth.weights.WeightsError` with what to
    do when the file is unset (and random init not allowed), absent, or of another layout.
    """
    resolved = resolve_path(SPEC, path, random_init)
    if resolved is not None and is_torchscript(resolved):
        return _load_torchscript(resolved)
    drop = lambda key: key.startswith(("fc.", "AuxLogits.")) or key.endswith("num_batches_tracked")  # noqa: E731
    return load_network(
        build_on_meta(FIDInceptionV3),
        SPEC,
        resolved,
        random_init,
        drop=drop,
        verify_checksum=verify_checksum,
        seed=seed,
    )


def _load_torchscript(path: Path) -> tuple[nn.Module, LoadRecord]:
    try:
        with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; the file is TorchScript
            warnings.simplefilter("ignore", DeprecationWarning)
            scripted = torch.jit.load(str(path), map_location="cpu").eval()
    except RuntimeError as exc:
        raise WeightsError(f"{path}: not a readable TorchScript Inception ({exc})") from exc
    net = TorchScriptInception(scripted).eval()
    try:
        with torch.inference_mode():
            out = net(torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE))
    except RuntimeError as exc:  # another script's forward signature
        raise WeightsError(f"{path}: TorchScript forward(img, return_features=True) failed: {exc}") from exc
    if tuple(out.shape) != (1, FEATURE_DIM):
        raise WeightsError(
            f"{path}: TorchScript Inception returned {tuple(out.shape)} features, expected (1, {FEATURE_DIM})"
        )
    return net, LoadRecord(SPEC.name, str(path), sha256_file(path), False)
