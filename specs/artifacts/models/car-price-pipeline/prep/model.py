"""Preprocessing step of the car-price-pipeline ensemble (Triton's python backend).

It derives the distance driven per year of age from the raw listing and stacks it
with the numeric features the regressor takes. `compute` is plain numpy (step inputs
by name in, outputs by name out): `kiln smoke` runs it in process to check what
Triton answers, so the Triton module is imported only where Triton runs the step.
"""

import numpy as np

# A car younger than half a year counts as half a year old: no division by zero.
MIN_AGE_YEARS = 0.5
INPUTS = ("car_age", "km_driven", "price_new", "accident_count")


def compute(car_age, km_driven, price_new, accident_count):
    """[batch, 1] columns -> the regressor's [batch, 5] features, float32."""
    per_year = km_driven / np.maximum(car_age, MIN_AGE_YEARS)
    stacked = np.concatenate([car_age, km_driven, price_new, accident_count, per_year], axis=1)
    return {"features": stacked.astype(np.float32)}


class TritonPythonModel:
    def initialize(self, args):
        import triton_python_backend_utils as pb_utils

        self.pb = pb_utils

    def execute(self, requests):
        responses = []
        for request in requests:
            columns = {n: self.pb.get_input_tensor_by_name(request, n).as_numpy() for n in INPUTS}
            outputs = [self.pb.Tensor(n, v) for n, v in compute(**columns).items()]
            responses.append(self.pb.InferenceResponse(output_tensors=outputs))
        return responses
