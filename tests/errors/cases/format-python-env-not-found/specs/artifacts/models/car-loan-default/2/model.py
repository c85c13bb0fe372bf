"""A python-backend model: Triton calls execute with a batch of requests."""


class TritonPythonModel:
    def execute(self, requests):
        return []
