"""Trains the example platform's TorchScript model `car-price-torch`.

A small MLP on the five numeric car-price features (FeatureSet car-listing-numeric),
fitted on NannyML's car-price reference period and saved with torch.jit.script, so that
forward() keeps the features' names: Triton's libtorch backend binds the config's inputs
to forward()'s arguments by name, and the outputs by position (`price__0`). The
standardisation is part of the module, so the served model takes the raw listing.

Deterministic: a fixed seed, one thread, full-batch Adam, deterministic kernels, and no
nn.Linear (see CarPriceMLP); two runs write the same bytes, whatever PYTHONHASHSEED (the
archive is written to memory, so its folder name does not depend on the file name, and
torch derives its serialization_id from the content). It prints the file's sha256 for the spec
(versions[0].artifact.sha256) and the mean absolute error.

    python -m runtime.examples.train_torch_example
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

TARGET = Path("specs/artifacts/models/car-price-torch/1/model.pt")
FEATURES = ("car_age", "km_driven", "price_new", "accident_count", "door_count")
SEED = 0
HIDDEN = 32
STEPS = 400
LEARNING_RATE = 0.03


def _module_class() -> Any:
    """The MLP's class, defined where torch is imported (torch is an optional extra)."""
    import torch

    class CarPriceMLP(torch.nn.Module):
        # Plain parameters, not nn.Linear: TorchScript writes a Linear's constants in
        # string-hash order, which changes from run to run and so the archive's bytes.
        def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
            super().__init__()
            self.register_buffer("mean", torch.tensor(x.mean(axis=0)))
            self.register_buffer("scale", torch.tensor(x.std(axis=0)))
            self.register_buffer("y_mean", torch.tensor(float(y.mean())))
            self.register_buffer("y_scale", torch.tensor(float(y.std())))
            width = len(FEATURES)
            self.w1 = torch.nn.Parameter(torch.randn(width, HIDDEN) / width**0.5)
            self.b1 = torch.nn.Parameter(torch.zeros(HIDDEN))
            self.w2 = torch.nn.Parameter(torch.randn(HIDDEN, 1) / HIDDEN**0.5)
            self.b2 = torch.nn.Parameter(torch.zeros(1))

        def standardised(self, x: torch.Tensor) -> torch.Tensor:
            # The network's answer in standard units, what the loss compares.
            hidden = torch.relu(torch.addmm(self.b1, (x - self.mean) / self.scale, self.w1))
            return torch.addmm(self.b2, hidden, self.w2)

        def forward(
            self,
            car_age: torch.Tensor,
            km_driven: torch.Tensor,
            price_new: torch.Tensor,
            accident_count: torch.Tensor,
            door_count: torch.Tensor,
        ) -> torch.Tensor:
            x = torch.cat([car_age, km_driven, price_new, accident_count, door_count], dim=1)
            return self.standardised(x) * self.y_scale + self.y_mean

    return CarPriceMLP


def reference_data() -> tuple[np.ndarray, np.ndarray]:
    """NannyML's car-price reference period: the features (float32) and the price."""
    os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"  # NannyML reports usage otherwise
    import nannyml

    reference = nannyml.load_synthetic_car_price_dataset()[0]
    x = reference[list(FEATURES)].to_numpy(np.float32)
    y = reference["y_true"].to_numpy(np.float32)
    return x, y


def train() -> tuple[bytes, float]:
    """The TorchScript archive's bytes and its mean absolute error on the reference period."""
    import torch

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    x, y = reference_data()
    model = _module_class()(x, y)
    inputs = torch.from_numpy(x)
    wanted = torch.from_numpy((y - y.mean()) / y.std()).reshape(-1, 1)
    optimiser = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    for _ in range(STEPS):
        optimiser.zero_grad()
        loss = torch.nn.functional.mse_loss(model.standardised(inputs), wanted)
        loss.backward()
        optimiser.step()
    scripted = torch.jit.script(model.eval())
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    with torch.inference_mode():
        columns = [inputs[:, i : i + 1] for i in range(len(FEATURES))]
        predicted = scripted(*columns).numpy().ravel()
    return without_debug_records(buffer.getvalue()), float(np.mean(np.abs(predicted - y)))


# Records that depend on where and when the archive was written, not on the model:
# `.debug_pkl` maps the compiled code back to this file by its absolute path on the
# machine that trained (it would carry that path into the repository), and
# `.data/serialization_id` is a number torch draws per save. torch.jit.load and Triton's
# libtorch backend load an archive without them, as archives of older torch versions are.
UNSTABLE_RECORDS = (".debug_pkl", "/.data/serialization_id")


def without_debug_records(archive: bytes) -> bytes:
    """The archive less the records that change with the checkout or the save."""
    kept = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(archive)) as source,
        zipfile.ZipFile(kept, "w", zipfile.ZIP_STORED) as target,
    ):
        for entry in source.infolist():
            if not entry.filename.endswith(UNSTABLE_RECORDS):
                # A fixed date: the archive's bytes depend on the model alone.
                record = zipfile.ZipInfo(entry.filename, date_time=(1980, 1, 1, 0, 0, 0))
                target.writestr(record, source.read(entry))
    return kept.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    payload, mae = train()
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_bytes(payload)
    print(f"wrote {TARGET}: sha256 {hashlib.sha256(payload).hexdigest()}, mae {mae:.2f}")
    return 0


if __name__ == "__main__":
    # TorchScript names the class after its module: run it as imported (not `__main__`),
    # so that `-m` and an import write the same archive.
    from runtime.examples import train_torch_example

    raise SystemExit(train_torch_example.main())
