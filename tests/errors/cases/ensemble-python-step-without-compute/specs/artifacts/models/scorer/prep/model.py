"""A step without compute(): Triton would serve it, but smoke has no reference to run."""


class TritonPythonModel:
    def execute(self, requests):
        return []
