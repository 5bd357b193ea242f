"""The graders: plain functions ``fit on (inputs, labels), return outputs on the test inputs``.

Both take the task's :class:`~fpsynth.utility.tasks.Kind` and return, per test row, P(1) for a
binary task and a real number for an ordinal (category index) or regression (eFACE) task. Both
are seeded and deterministic on the CPU; reuse them on your own arrays::

    from fpsynth.utility.graders import geometry_grader, appearance_grader
    p = geometry_grader(features_train, y_train, features_test, Kind.BINARY, GeometryConfig(), seed=0)
    p = appearance_grader(crops_train, y_train, crops_test, Kind.BINARY, AppearanceConfig(), seed=0)

``features_*``: (N, F) floats (:func:`fpsynth.utility.features.geometry_features` of the 68 points,
or :func:`fpsynth.utility.ir50.ir50_features` of the crops for the ``ir50`` grader, whose head is
:func:`linear_head`); ``crops_*``: (N, 112, 112, 3) uint8 RGB aligned crops (any object with ``len``
and ``crops[rows]`` will do, such as :class:`~fpsynth.utility.regimes.Rows`). Class imbalance is
weighted away (balanced class weights; a positive-class weight in the CNN's loss), since palsy sets
are mostly palsy.

Why the CNN sees the mirror difference by default: on a few dozen subjects a CNN on the plain crop
learns who the subjects are (skin, hair, background differ far more between people than a palsy
changes a face) and tests at chance or below on new subjects (AUROC 0.25-0.42 on rendered faces
with an exact palsy, tests/test_utility.py). A one-sided palsy is a left-right asymmetry: the
aligned crop minus its mirror image removes what a symmetric face shares and keeps what the palsy
changed, and the same CNN then learns it (AUROC about 0.87 there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from fpsynth.seeds import global_torch_rng, torch_generator
from fpsynth.utility.config import AppearanceConfig, AppearanceInput, GeometryConfig, GeometryModel, Ir50GraderConfig
from fpsynth.utility.tasks import Kind

if TYPE_CHECKING:
    from fpsynth.utility.regimes import Rows

EFACE_SCALE = 100.0  # eFACE is learnt as eFACE / 100 by the CNN


def geometry_grader(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, kind: Kind, cfg: GeometryConfig, seed: int
) -> np.ndarray:
    """A scikit-learn model on geometry features (N, F) -> (M,) outputs for ``x_test``."""
    if cfg.model is GeometryModel.LINEAR:
        return linear_head(x_train, y_train, x_test, kind, cfg.c, seed)
    # Histogram boosting (features binned once into 255 levels): the exact-split GradientBoosting
    # re-sorts every feature at every split and took 2.8x longer on 20,000 rows x 60 features;
    # no early stopping, so no rows are held out and the fit is the same for a seed.
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.utils.class_weight import compute_sample_weight

    y = np.asarray(y_train)
    if kind is Kind.BINARY:
        y = y.astype(int)
        model = HistGradientBoostingClassifier(max_iter=cfg.trees, max_depth=2, early_stopping=False, random_state=seed)
        model.fit(x_train, y, sample_weight=compute_sample_weight("balanced", y))
        return model.predict_proba(x_test)[:, list(model.classes_).index(1)]
    model = HistGradientBoostingRegressor(max_iter=cfg.trees, max_depth=2, early_stopping=False, random_state=seed)
    model.fit(x_train, y.astype(np.float64))
    return model.predict(x_test)


def linear_head(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, kind: Kind, c: float, seed: int
) -> np.ndarray:
    """Standardised features (N, F) -> logistic regression (P(1), balanced class weights) or ridge
    (alpha = 1 / c) -> (M,) outputs for ``x_test``. The geometry grader's linear model and the head
    on frozen IR-50 features."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(y_train)
    if kind is Kind.BINARY:
        y = y.astype(int)
        model = make_pipeline(
            StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=2000, random_state=seed)
        )
        model.fit(x_train, y)
        return model.predict_proba(x_test)[:, list(model.classes_).index(1)]
    model = make_pipeline(StandardScaler(), Ridge(alpha=1.0 / c))
    model.fit(x_train, y.astype(np.float64))
    return model.predict(x_test)


class SmallCNN(nn.Module):
    """Four stride-2 conv blocks (S x W -> S/16 x W/16, rounded up), global average pool, one output."""

    def __init__(self, width: int = 16, in_channels: int = 3) -> None:
        super().__init__()
        chans = [in_channels, width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(a, b, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(chans[-1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, S, W) -> (B,)
        return self.head(self.features(x).mean((2, 3))).squeeze(1)


IN_CHANNELS = {AppearanceInput.MIRROR: 3, AppearanceInput.RGB: 3, AppearanceInput.BOTH: 6}


def cnn_input(crops: np.ndarray, mode: AppearanceInput, device: torch.device, side: int | None = None) -> torch.Tensor:
    """(B, H, W, 3) uint8 crops -> the CNN's input for ``mode`` (floats in [-1, 1] or differences in [-2, 2]),
    area-shrunk to (side, side) first when ``side`` is given and differs from H.

    mirror: d = x - flip(x) is antisymmetric (its right half is its left half mirrored and negated),
    so only the left half (B, 3, S, S/2) is kept: all of the information, half the compute.
    """
    x = torch.from_numpy(np.ascontiguousarray(crops)).to(device)  # (B, H, W, 3) uint8
    x = x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)  # (B, 3, H, W) in [-1, 1]
    if side is not None and side != x.shape[2]:
        x = nn.functional.interpolate(x, size=(side, side), mode="area")  # (B, 3, S, S)
    if mode is AppearanceInput.RGB:
        return x
    d = x - x.flip(3)  # (B, 3, H, W)
    if mode is AppearanceInput.MIRROR:
        return d[..., : d.shape[3] // 2].contiguous()  # (B, 3, H, W/2)
    return torch.cat([x, d], 1)  # (B, 6, H, W)


def training_steps(n: int, cfg: AppearanceConfig) -> int:
    """Optimizer steps for ``n`` training images: ``cfg.epochs`` passes, capped at ``cfg.max_steps``."""
    per_epoch = n // cfg.batch_size + (n % cfg.batch_size >= 2)  # a last batch of one is dropped (batch norm)
    total = cfg.epochs * per_epoch
    return min(total, cfg.max_steps) if cfg.max_steps else total


def appearance_grader(
    x_train: np.ndarray | Rows, y_train: np.ndarray, x_test: np.ndarray, kind: Kind, cfg: AppearanceConfig, seed: int
) -> np.ndarray:
    """A small CNN trained :func:`training_steps` steps on crops (N, 112, 112, 3) uint8 -> (M,) outputs
    (``x_train`` an array or :class:`~fpsynth.utility.regimes.Rows`, indexed one batch at a time)."""
    device = torch.device(cfg.device)
    gen = torch_generator(seed, "utility-grader")
    with global_torch_rng(seed, "utility-grader"):
        net = SmallCNN(cfg.width, IN_CHANNELS[cfg.input]).to(device)
    y = torch.as_tensor(np.asarray(y_train, np.float32))
    if kind is Kind.REGRESSION:
        y = y / EFACE_SCALE
    if kind is Kind.BINARY:
        pos = float(y.sum())
        weight = torch.tensor((len(y) - pos) / pos if pos > 0 else 1.0, device=device)
        loss_fn: nn.Module = nn.BCEWithLogitsLoss(pos_weight=weight)
    else:
        loss_fn = nn.SmoothL1Loss()
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    net.train()
    steps, total = 0, training_steps(len(y), cfg)
    while steps < total:
        order = torch.randperm(len(y), generator=gen)
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            if len(idx) < 2 or steps == total:  # batch norm needs two samples
                break
            rows = np.sort(idx.numpy())  # sorted: gathers from memory-mapped or stacked sources stay sequential
            out = net(cnn_input(x_train[rows], cfg.input, device, cfg.side))
            loss = loss_fn(out, y[rows].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
    net.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(x_test), 256):
            outs.append(net(cnn_input(x_test[i : i + 256], cfg.input, device, cfg.side)).float().cpu())
    out = torch.cat(outs).numpy() if outs else np.zeros(0, np.float32)
    if kind is Kind.BINARY:
        return 1.0 / (1.0 + np.exp(-out))
    return out * EFACE_SCALE if kind is Kind.REGRESSION else out


def ir50_grader(
    f_train: np.ndarray, y_train: np.ndarray, f_test: np.ndarray, kind: Kind, cfg: Ir50GraderConfig, seed: int
) -> np.ndarray:
    """The linear head on frozen IR-50 features (N, 2E) from :func:`fpsynth.utility.ir50.ir50_features`."""
    return linear_head(f_train, y_train, f_test, kind, cfg.c, seed)
