"""Train the texture CNN from real photos only: `python -m pipelines.spot.train_texture`.

Needs PyTorch (CPU build, training only: `pip install -r requirements-train.txt`); the app and the tests
need only the exported ONNX file. Steps (every random choice comes from --seed):
1. the same faces, identities and identity split as `pipelines.spot.train` (held-out identities never
   seen here; the calibration identities are kept for choosing the epoch and for the logistic fusion);
2. crops of real / pseudo-fake pairs (inswapper geometry) and real / two-identity-blend pairs
   (`pseudofake.make_identity_blend`, donors from the same identities) at random face sizes;
3. train a small CNN (about 0.1 M parameters) with pairs in the same batch, on 2 CPU threads;
4. keep the epoch with the best calibration-set AUC and export it to ONNX (`weights/spot_texture.onnx`).

Then run `python -m pipelines.spot.train` to fit the logistic model with the net's output as a signal.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pipelines.spot.data import SampleSet, identity_blend_samples, pseudo_fake_samples
from pipelines.spot.metrics import roc_auc
from pipelines.spot.signals import CROP_SIZE
from pipelines.spot.texture_net import INPUT_NAME, TEXTURE_NET_PATH, to_input
from pipelines.spot.train import DEFAULT_DETECTOR, DEFAULT_FACES, SEED, training_faces

THREADS = 2


def build_net() -> Any:
    """A small all-convolution net: 128 px in, 8 x 8 x 64 features, a spatial linear head (the crops are
    aligned, so where a seam lies matters), one log-odds out."""
    from torch import nn

    def block(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *block(4, 16, 2),  # 64
        *block(16, 32, 1),
        *block(32, 48, 2),  # 32
        *block(48, 48, 1),
        *block(48, 64, 2),  # 16
        *block(64, 64, 2),  # 8
        nn.AvgPool2d(2),  # 4
        nn.Flatten(),
        nn.Dropout(0.3),
        nn.Linear(64 * 16, 1),
    )


def ensemble(nets: list[Any]) -> Any:
    """One module whose output is the mean log-odds of several nets (exported as a single ONNX graph)."""
    from torch import nn

    class Mean(nn.Module):
        def __init__(self, members: list[nn.Module]) -> None:
            super().__init__()
            self.members = nn.ModuleList(members)

        def forward(self, x: Any) -> Any:
            return sum(m(x) for m in self.members) / len(self.members)

    return Mean(nets).eval()


def _augment(batch: Any, generator: Any) -> Any:
    """Random mirror, colour gain (+-10 % per RGB channel, the whole crop) and a shift of up to 3 px."""
    import torch

    n = batch.shape[0]
    flip = torch.rand(n, generator=generator) < 0.5
    batch = torch.where(flip[:, None, None, None], batch.flip(3), batch)
    gain = torch.ones(n, 4, 1, 1)
    gain[:, :3] = 0.9 + 0.2 * torch.rand(n, 3, 1, 1, generator=generator)
    batch = (batch * gain).clamp(0.0, 1.0)
    dx, dy = (int(v) for v in torch.randint(-3, 4, (2,), generator=generator))
    return torch.roll(batch, shifts=(dy, dx), dims=(2, 3))


def predict(net: Any, crops: NDArray[np.uint8], batch: int = 256) -> NDArray[np.float64]:
    import torch

    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(crops), batch):
            out.append(net(torch.from_numpy(to_input(crops[i : i + batch]))).numpy().reshape(-1))
    return np.concatenate(out).astype(np.float64)


def fit_net(
    train: SampleSet,
    val: SampleSet,
    epochs: int,
    seed: int,
    lr: float = 2e-3,
    log: bool = True,
    threads: int = THREADS,
) -> tuple[Any, list[float]]:
    """Train with AdamW and a one-cycle schedule; return the net at the epoch of best validation AUC."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    net = build_net()
    x = torch.from_numpy(to_input(train.crops))
    y = torch.from_numpy(train.labels.astype(np.float32))
    optimiser = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-3)
    steps_per_epoch = max(len(y) // 64, 1)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, lr, total_steps=epochs * steps_per_epoch)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    best: tuple[float, dict[str, Any]] = (-1.0, {})
    history = []
    for epoch in range(epochs):
        net.train()
        start = time.time()
        order = torch.randperm(len(y), generator=generator)
        total = 0.0
        for step in range(steps_per_epoch):
            idx = order[step * 64 : (step + 1) * 64]
            optimiser.zero_grad()
            loss = loss_fn(net(_augment(x[idx], generator)).reshape(-1), y[idx])
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item()
        auc = roc_auc(val.labels, predict(net, val.crops))
        history.append(auc)
        if auc > best[0]:
            best = (auc, {k: v.clone() for k, v in net.state_dict().items()})
        if log:
            print(
                f"epoch {epoch + 1}: loss {total / steps_per_epoch:.4f}, val AUC {auc:.3f} "
                f"({time.time() - start:.0f} s)"
            )
    net.load_state_dict(best[1])
    net.eval()
    return net, history


def export_onnx(net: Any, path: Path) -> Path:
    """Write the net as ONNX (opset 17, dynamic batch) with one input `crop` and one output `logit`."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(1, 4, CROP_SIZE, CROP_SIZE)
    torch.onnx.export(
        net,
        (dummy,),
        str(path),
        input_names=[INPUT_NAME],
        output_names=["logit"],
        dynamic_axes={INPUT_NAME: {0: "batch"}, "logit": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.spot.train_texture", description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=Path, default=DEFAULT_FACES, help="folder of real photos + master.csv")
    parser.add_argument("--detector", type=Path, default=DEFAULT_DETECTOR, help="SCRFD ONNX face detector")
    parser.add_argument("--per-face", type=int, default=24, help="pseudo-fake pairs per training face")
    parser.add_argument("--blend-per-face", type=int, default=24, help="two-identity blend pairs per training face")
    parser.add_argument(
        "--blend-colour", type=float, nargs=2, default=(0.5, 1.0), help="range of the blends' colour-match strength"
    )
    parser.add_argument("--epochs", type=int, default=6, help="the best epoch on the calibration identities is kept")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, default=TEXTURE_NET_PATH, help="where to write the ONNX net")
    args = parser.parse_args(argv)
    start = time.time()
    # 1. Faces, identities, the same split as the logistic model's training.
    loaded = training_faces(args.faces, args.detector, args.seed)
    if loaded is None:
        return 2
    _, images, split = loaded
    fit_faces, cal_faces = split.fit, split.calibrate
    # 2. Crops of real / fake pairs (seeds distinct from the logistic model's samples).
    train = SampleSet.concat(
        [
            pseudo_fake_samples(fit_faces, images, args.per_face, args.seed + 20, keep_crops=True),
            identity_blend_samples(
                fit_faces, images, args.blend_per_face, args.seed + 21, True, tuple(args.blend_colour)
            ),
        ]
    )
    val = SampleSet.concat(
        [
            pseudo_fake_samples(cal_faces, images, 8, args.seed + 22, keep_crops=True),
            identity_blend_samples(cal_faces, images, 8, args.seed + 23, True, tuple(args.blend_colour)),
        ]
    )
    print(f"crops: train {len(train.labels)}, validation {len(val.labels)} ({time.time() - start:.0f} s)")
    # 3-4. Train, keep the best epoch, export.
    net, history = fit_net(train, val, args.epochs, args.seed)
    export_onnx(net, args.out)
    print(f"best validation AUC {max(history):.3f}; wrote {args.out} in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
