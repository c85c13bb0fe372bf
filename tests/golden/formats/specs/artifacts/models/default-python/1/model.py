"""A python-backend model: a logistic score of two features."""

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            age = pb_utils.get_input_tensor_by_name(request, "age").as_numpy()
            income = pb_utils.get_input_tensor_by_name(request, "income").as_numpy()
            score = 1.0 / (1.0 + np.exp(-(0.02 * age - 0.00001 * income)))
            output = pb_utils.Tensor("score", score.astype(np.float32))
            responses.append(pb_utils.InferenceResponse(output_tensors=[output]))
        return responses
