# The Kiln runtime image: every step of the training pipeline, one `python -m` module each.
#
#   docker build -t ghcr.io/acme/kiln-runtime:0.1.0 .
#   docker run --rm ghcr.io/acme/kiln-runtime:0.1.0 runtime.steps.features --source ... --out /o
#
# Modules: the pipeline's steps (runtime.steps.features, .train, .evaluate,
# .validate_model, .publish), the example data (runtime.examples.example_data),
# the monitor job (runtime.monitor) and the serving helpers (runtime.serving.assemble,
# .smoke, .capture_step). The entry point is `python -m`, so the first argument names the module and the
# rest are its flags; with no arguments it prints the features step's help. The image
# carries runtime/ only, never the compiler: it installs runtime/pyproject.toml.
#
# The base image is pinned by tag AND digest, so that a rebuild gets the same bytes.
# UNVERIFIED PIN: this digest was written without registry access and must be refreshed
# before the first build (and whenever the base is updated), e.g. with
#   docker buildx imagetools inspect python:3.11-slim-bookworm --format '{{.Manifest.Digest}}'
FROM python:3.11-slim-bookworm@sha256:8df0e8faf75b3c17ac33dc90d76787bbbcae142679e11da8c6f16afae5605ea7

# No .pyc files in a read-only container, unbuffered logs, no pip nagging, and NannyML
# (imported by the example data and the monitor) never phones home.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    NML_DISABLE_USAGE_LOGGING=1

# uid 1000: the pipeline's pods run as non-root (runAsNonRoot needs a numeric USER).
RUN useradd --uid 1000 --user-group --create-home --shell /usr/sbin/nologin kiln

WORKDIR /opt/kiln/src
COPY runtime/ runtime/
# The runtime's dependencies cover the steps, the monitor and the serving helpers (pandas,
# pyarrow, scikit-learn's metrics and fsspec come with nannyml and onnxruntime); the `train`
# extra adds skl2onnx, onnx, xgboost, onnxmltools and lightgbm for the built-in trainer
# (runtime.steps.train), for evaluating and validating its native tree models, and for
# the smoke Job, which compares a tree model's FIL answers with the library's own.
# tests/unit/runtime/test_dockerfile.py runs this exact install in a venv.
RUN pip install --no-cache-dir "./runtime[train]"
# pyarrow for the capture step, which Triton runs with the stock Triton image's Python
# (3.12, numpy, no pyarrow): a hash-pinned wheel for that Python, into a folder of its
# own that the serving pod's init container copies beside the step
# (runtime/serving/capture_step; the pin is runtime/serving/capture_step/libraries.py).
RUN python -m runtime.serving.capture_step.libraries > /tmp/triton-python.txt \
    && pip install --no-cache-dir --require-hashes --no-deps --only-binary=:all: \
        --python-version 3.12 --implementation cp --target /opt/kiln/triton-python \
        -r /tmp/triton-python.txt \
    && rm /tmp/triton-python.txt

USER 1000:1000
# Outside the source tree, so `python -m runtime.<module>` imports the installed package.
WORKDIR /home/kiln
ENTRYPOINT ["python", "-m"]
CMD ["runtime.steps.features", "--help"]
