"""The learned decision: logistic regression over the signals, with face-size interactions.

logit = bias + size_weight * s + sum_i (w_i + v_i * s) * z_i, then Platt-calibrated (a * logit + b),
where z_i is signal i standardised with the training mean and spread, and s the centred face scale
(log2 of image pixels per aligned unit, clipped). The size interaction lets detail signals count more
on large faces (where a 128 px generator is upscaled) and less on small ones (where nothing is lost).

Each signal's contribution to the calibrated logit is a * (w_i + v_i * s) * z_i; the rest (bias and
face size) is the baseline. Contributions plus baseline give the logit exactly.

Weights are a small JSON file committed under `pipelines/spot/weights/`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

SCALE_CLIP = (-1.0, 3.0)
"""Face-scale range the model extrapolates over (below: tiny faces, above: huge faces)."""
SCALE_CENTRE = 1.0


def sigmoid(x: NDArray[np.float64] | float) -> NDArray[np.float64]:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(x, -40.0, 40.0))), dtype=np.float64)


def centred_scale(scales: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.clip(np.asarray(scales, np.float64), *SCALE_CLIP) - SCALE_CENTRE


def design(z: NDArray[np.float64], s: NDArray[np.float64]) -> NDArray[np.float64]:
    """Columns: z (n signals), z * s (n), s (1). The bias is kept separately."""
    return np.hstack([z, z * s[:, None], s[:, None]])


def fit_logistic(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    l2: float,
    sample_weight: NDArray[np.float64] | None = None,
    iterations: int = 50,
) -> tuple[NDArray[np.float64], float]:
    """L2-regularised, optionally weighted logistic regression by Newton's method (bias not penalised)."""
    n, d = x.shape
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, np.float64) * n / np.sum(sample_weight)
    xb = np.hstack([x, np.ones((n, 1))])
    beta = np.zeros(d + 1)
    penalty = np.full(d + 1, l2)
    penalty[-1] = 0.0
    for _ in range(iterations):
        p = sigmoid(xb @ beta)
        grad = xb.T @ (w * (p - y)) / n + penalty * beta
        hess = (xb * (w * p * (1 - p))[:, None]).T @ xb / n + np.diag(penalty) + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    return beta[:-1], float(beta[-1])


@dataclass(frozen=True)
class SpotModel:
    """Loaded weights of the learned decision (immutable, shared by every thread)."""

    names: tuple[str, ...]  # signal names, model column order
    mean: NDArray[np.float64]  # (n,) standardisation
    std: NDArray[np.float64]  # (n,)
    weights: NDArray[np.float64]  # (n,) w_i
    size_weights: NDArray[np.float64]  # (n,) v_i
    scale_weight: float
    bias: float
    platt_a: float = 1.0
    platt_b: float = 0.0

    def standardise(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        return (np.asarray(features, np.float64) - self.mean) / self.std

    def contributions(self, features: NDArray[np.float64], scales: NDArray[np.float64]) -> NDArray[np.float64]:
        """(N, n) contribution of each signal to the calibrated logit."""
        z = self.standardise(features)
        s = centred_scale(scales)
        return self.platt_a * z * (self.weights[None, :] + self.size_weights[None, :] * s[:, None])

    def baseline(self, scales: NDArray[np.float64]) -> NDArray[np.float64]:
        """(N,) the part of the calibrated logit not owed to any signal."""
        s = centred_scale(scales)
        return self.platt_a * (self.bias + self.scale_weight * s) + self.platt_b

    def logit(self, features: NDArray[np.float64], scales: NDArray[np.float64]) -> NDArray[np.float64]:
        return self.contributions(features, scales).sum(axis=1) + self.baseline(scales)

    def predict(self, features: NDArray[np.float64], scales: NDArray[np.float64]) -> NDArray[np.float64]:
        """Calibrated probability that each face was swapped."""
        return sigmoid(self.logit(np.atleast_2d(features), np.atleast_1d(scales)))

    def to_json(self) -> dict[str, object]:
        return {
            "format": "swapspot-logistic-v1",
            "names": list(self.names),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "weights": self.weights.tolist(),
            "size_weights": self.size_weights.tolist(),
            "scale_weight": self.scale_weight,
            "bias": self.bias,
            "platt_a": self.platt_a,
            "platt_b": self.platt_b,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> SpotModel:
        if data.get("format") != "swapspot-logistic-v1":
            raise ValueError(f"unknown detector weights format {data.get('format')!r}")

        def arr(key: str) -> NDArray[np.float64]:
            return np.asarray(data[key], dtype=np.float64)

        return cls(
            tuple(str(n) for n in data["names"]),  # type: ignore[attr-defined]
            arr("mean"),
            arr("std"),
            arr("weights"),
            arr("size_weights"),
            float(data["scale_weight"]),  # type: ignore[arg-type]
            float(data["bias"]),  # type: ignore[arg-type]
            float(data["platt_a"]),  # type: ignore[arg-type]
            float(data["platt_b"]),  # type: ignore[arg-type]
        )


WEIGHTS_PATH = Path(__file__).resolve().parent / "weights" / "spot_logistic.json"


def load_model(path: Path | None = None) -> SpotModel:
    """The committed weights (or those at `path`)."""
    path = path or WEIGHTS_PATH
    with path.open() as handle:
        return SpotModel.from_json(json.load(handle))


def save_model(model: SpotModel, path: Path | None = None) -> Path:
    path = path or WEIGHTS_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(model.to_json(), indent=1) + "\n")
    return path


def train_model(
    features: NDArray[np.float64],
    scales: NDArray[np.float64],
    labels: NDArray[np.int64],
    names: tuple[str, ...],
    l2: float = 1e-3,
) -> SpotModel:
    """Fit the logistic model (uncalibrated: platt_a = 1, platt_b = 0)."""
    mean = features.mean(axis=0)
    std = features.std(axis=0) + 1e-6
    z = (features - mean) / std
    s = centred_scale(scales)
    beta, bias = fit_logistic(design(z, s), labels.astype(np.float64), l2)
    n = len(names)
    return SpotModel(names, mean, std, beta[:n], beta[n : 2 * n], float(beta[2 * n]), bias)


def calibrate(
    model: SpotModel,
    features: NDArray[np.float64],
    scales: NDArray[np.float64],
    labels: NDArray[np.int64],
    fake_prior: float = 0.5,
) -> SpotModel:
    """Platt scaling on held-out samples: fit a, b so that sigmoid(a * logit + b) matches the labels.

    `fake_prior` re-weights the classes: the score becomes the probability of a swap when that share
    of the faces one checks are swaps (below 0.5 makes the 0.5 threshold stricter, fewer false alarms).
    """
    raw = SpotModel(
        model.names, model.mean, model.std, model.weights, model.size_weights, model.scale_weight, model.bias
    )
    logits = raw.logit(features, scales)[:, None]
    y = labels.astype(np.float64)
    n_fake, n_real = max(y.sum(), 1.0), max((1 - y).sum(), 1.0)
    weight = np.where(y > 0.5, fake_prior / n_fake, (1.0 - fake_prior) / n_real)
    (a,), b = fit_logistic(logits, y, l2=0.0, sample_weight=weight)
    return SpotModel(
        model.names,
        model.mean,
        model.std,
        model.weights,
        model.size_weights,
        model.scale_weight,
        model.bias,
        float(a),
        b,
    )


def fuse_signal(
    model: SpotModel,
    name: str,
    features: NDArray[np.float64],
    scales: NDArray[np.float64],
    extra: NDArray[np.float64],
    labels: NDArray[np.int64],
    fake_prior: float = 0.5,
) -> SpotModel:
    """Add one more signal (e.g. a learned score) to a fitted model and calibrate both together.

    On held-aside samples (never used to fit `model` or to train whatever produced `extra`): fit
    sigmoid(a * logit + c * z + b), where logit is `model`'s uncalibrated logit and z the new signal
    standardised on these samples. The result is a model with one more column whose weight is c / a,
    so its contribution a * (c / a) * z = c * z and the other contributions keep their meaning.
    `fake_prior` re-weights the classes as in `calibrate`.
    """
    raw = SpotModel(
        model.names, model.mean, model.std, model.weights, model.size_weights, model.scale_weight, model.bias
    )
    mean, std = float(np.mean(extra)), float(np.std(extra) + 1e-6)
    x = np.stack([raw.logit(features, scales), (np.asarray(extra, np.float64) - mean) / std], axis=1)
    y = labels.astype(np.float64)
    n_fake, n_real = max(y.sum(), 1.0), max((1 - y).sum(), 1.0)
    weight = np.where(y > 0.5, fake_prior / n_fake, (1.0 - fake_prior) / n_real)
    (a, c), b = fit_logistic(x, y, l2=0.0, sample_weight=weight)
    return SpotModel(
        (*model.names, name),
        np.r_[model.mean, mean],
        np.r_[model.std, std],
        np.r_[model.weights, c / a],
        np.r_[model.size_weights, 0.0],
        model.scale_weight,
        model.bias,
        float(a),
        b,
    )
