# The Kiln runtime image: every step of the training pipeline, one `python -m` module each.
#
#   docker build -t ghcr.io/acme/kiln-runtime:0.1.0 .
#   docker run --rm ghcr.io/acme/kiln-runtime:0.1.0 runtime.steps.features --source ... --out /tmp/out
#
# Steps: runtime.steps.features, runtime.examples.train_example, runtime.steps.evaluate, runtime.steps.validate_model,
# runtime.steps.publish, runtime.examples.example_data (the entry point is `python -m`, so the first argument
# names the module and the rest are its flags; with no arguments it prints the features help).
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
COPY pyproject.toml README.md ./
COPY compiler/ compiler/
COPY runtime/ runtime/
# The core dependencies cover features, evaluate, validate_model, publish and example_data
# (pandas, pyarrow, scikit-learn's metrics and fsspec with s3fs/gcsfs come with nannyml and
# onnxruntime); the `train` extra adds scikit-learn, skl2onnx and onnx for
# runtime.examples.train_example. tests/unit/test_dockerfile.py runs this exact install in a venv.
RUN pip install --no-cache-dir "./[train]"

USER 1000:1000
# Outside the source tree, so `python -m runtime.<step>` imports the installed package.
WORKDIR /home/kiln
ENTRYPOINT ["python", "-m"]
CMD ["runtime.steps.features", "--help"]
