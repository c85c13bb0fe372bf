"""A step of an error case: its model.py is only parsed, never run."""


class TritonPythonModel:
    def execute(self, requests):
        return []
