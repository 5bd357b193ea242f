"""The graders: plain functions ``fit on (inputs, labels), return outputs on the test inputs``.

Both take the task's :class:`~fpsynth.utility.tasks.Kind` and return, per test row, P(1) for a
binary task and a real number for an ordinal (category index) or regression (eFACE) task. Both
are seeded and deterministic on the CPU; reuse them on your own arrays::

    from fpsynth.utility.graders import geometry_grader, appearance_grader
    p = geometry_grader(features_train, y_train, features_test, Kind.BINARY, GeometryConfig(), seed=0)
    p = appearance_grader(crops_train, y_train, crops_test, Kind.BINARY, AppearanceConfig(), seed=0)

``features_*``: (N, F) floats (:func:`fpsynth.utility.features.geometry_features` of the 68 points);
``crops_*``: (N, 112, 112, 3) uint8 RGB aligned crops. Class imbalance is weighted away (balanced
class weights; a positive-class weight in the CNN's loss), since palsy sets are mostly palsy.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fpsynth.utility.config import AppearanceConfig, GeometryConfig, GeometryModel
from fpsynth.utility.tasks import Kind

EFACE_SCALE = 100.0  # eFACE is learnt as eFACE / 100 by the CNN


def geometry_grader(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, kind: Kind,
                    cfg: GeometryConfig, seed: int) -> np.ndarray:
    """A scikit-learn model on geometry features (N, F) -> (M,) outputs for ``x_test``."""
    from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.utils.class_weight import compute_sample_weight

    y = np.asarray(y_train)
    if kind is Kind.BINARY:
        y = y.astype(int)
        if cfg.model is GeometryModel.BOOSTING:
            model = GradientBoostingClassifier(n_estimators=cfg.trees, max_depth=2, random_state=seed)
            model.fit(x_train, y, sample_weight=compute_sample_weight("balanced", y))
        else:
            model = make_pipeline(StandardScaler(), LogisticRegression(C=cfg.c, class_weight="balanced", max_iter=2000,
                                                                       random_state=seed))
            model.fit(x_train, y)
        return model.predict_proba(x_test)[:, list(model.classes_).index(1)]
    if cfg.model is GeometryModel.BOOSTING:
        model = GradientBoostingRegressor(n_estimators=cfg.trees, max_depth=2, random_state=seed)
    else:
        model = make_pipeline(StandardScaler(), Ridge(alpha=1.0 / cfg.c))
    model.fit(x_train, y.astype(np.float64))
    return model.predict(x_test)


class SmallCNN(nn.Module):
    """Four stride-2 conv blocks (112 -> 56 -> 28 -> 14 -> 7), global average pool, one output."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        chans = [3, width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(a, b, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(chans[-1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, 112, 112) -> (B,)
        return self.head(self.features(x).mean((2, 3))).squeeze(1)


def _to_input(crops: np.ndarray, device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(crops)).to(device)  # (B, H, W, 3) uint8
    return x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)  # (B, 3, H, W) in [-1, 1]


def appearance_grader(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, kind: Kind,
                      cfg: AppearanceConfig, seed: int) -> np.ndarray:
    """A small CNN trained ``cfg.epochs`` epochs on crops (N, 112, 112, 3) uint8 -> (M,) outputs."""
    device = torch.device(cfg.device)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = SmallCNN(cfg.width).to(device)
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
    for _ in range(cfg.epochs):
        order = torch.randperm(len(y), generator=gen)
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            if len(idx) < 2:  # batch norm needs two samples
                continue
            out = net(_to_input(x_train[idx.numpy()], device))
            loss = loss_fn(out, y[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    net.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(x_test), 256):
            outs.append(net(_to_input(x_test[i:i + 256], device)).float().cpu())
    out = torch.cat(outs).numpy() if outs else np.zeros(0, np.float32)
    if kind is Kind.BINARY:
        return 1.0 / (1.0 + np.exp(-out))
    return out * EFACE_SCALE if kind is Kind.REGRESSION else out
