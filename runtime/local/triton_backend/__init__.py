"""Files Kiln installs into Triton model repositories (not imported by Kiln itself).

`model.py` is the python-backend adapter that runs an ONNX model with onnxruntime;
it imports Triton's `triton_python_backend_utils` and runs only inside Triton.
"""
