"""A step of an error case: its model.py is only parsed, never run."""


def compute(**inputs):
    return inputs


class TritonPythonModel:
    def execute(self, requests):
        return []
