"""A synthetic spec tree of any size, for the compile benchmark and the tests that
need many models (parallel rendering): one Project with three cluster
environments, one FeatureSet per ten models, and models like the example
platform's (remote artifacts with declared signatures, so no model file is read).
"""

from __future__ import annotations

from pathlib import Path

ENVIRONMENTS = ("dev", "staging", "production")

PROJECT = """\
apiVersion: kiln/v1alpha1
kind: Project
metadata: {name: bench}
spec:
  git: {repo: https://github.com/example/bench.git}
  images:
    runtime: ghcr.io/example/kiln-runtime:0.1.0
    triton: nvcr.io/nvidia/tritonserver:25.01-py3
  storage: {models: s3://bench-models, data: s3://bench-data}
  environments:
    - {name: dev, namespace: ml-dev}
    - name: staging
      namespace: ml-staging
      gpu: {node_selector: {nvidia.com/gpu.product: NVIDIA-L4}, quota: 64}
    - name: production
      namespace: ml-prod
      gpu: {node_selector: {nvidia.com/gpu.product: NVIDIA-L4}, quota: 128}
      policy: {min_replicas: 2, require_analysis: true}
  alert_routes:
    - {name: oncall, alertmanager: {url: http://alertmanager.monitoring:9093}}
    - {name: slack, slack: {webhook_secret: {name: slack-webhook, key: url}}}
"""

FEATURESET = """\
apiVersion: kiln/v1alpha1
kind: FeatureSet
metadata: {{name: features-{index}}}
spec:
  version: 1
  entity: id
  timestamp: ts
  source: {{uri: features-{index}/}}
  features:
    - {{name: amount, dtype: float32, kind: continuous, range: {{min: 0}}}}
    - {{name: ratio, dtype: float32, kind: continuous, range: {{min: 0, max: 1}}}}
    - {{name: count, dtype: int64, kind: continuous}}
    - {{name: segment, dtype: string, kind: categorical, values: [a, b, c]}}
    - {{name: region, dtype: string, kind: categorical}}
    - {{name: flag, dtype: bool, kind: categorical}}
"""

# A model like the example platform's: serving with batching and warm-up, a
# canary with analysis, training with gates, monitoring and alerts.
MODEL = """\
apiVersion: kiln/v1alpha1
kind: Model
metadata: {{name: model-{index:05d}, owner: team-{team}@example.com}}
spec:
  task: binary_classification
  features: features-{featureset}@1
  target: label_true
  signature:
    inputs:
      - {{name: amount, dtype: fp32, shape: [-1, 1]}}
      - {{name: ratio, dtype: fp32, shape: [-1, 1]}}
      - {{name: count, dtype: int64, shape: [-1, 1]}}
      - {{name: segment, dtype: string, shape: [-1, 1]}}
      - {{name: region, dtype: string, shape: [-1, 1]}}
      - {{name: flag, dtype: bool, shape: [-1, 1]}}
    outputs:
      - {{name: label, dtype: int64, shape: [-1]}}
      - {{name: probabilities, dtype: fp32, shape: [-1, 2]}}
  versions:
    - {{version: 1, artifact: {{uri: model-{index:05d}/1/model.onnx}}, metrics: {{roc_auc: 0.9}}}}
    - {{version: 2, artifact: {{uri: model-{index:05d}/2/model.onnx}}, metrics: {{roc_auc: 0.91}}}}
  serving:
    version: 2
    max_batch_size: {batch}
    dynamic_batching: {{max_queue_delay_us: 500}}
    instance_groups: [{{kind: gpu, count: 2}}]
    resources: {{gpus: 1, cpu: "4", memory: 8Gi}}
    replicas: {{min: 2, max: 4}}
    autoscaling: {{metric: queue_time_us, target: 2000}}
    warmup: {{batch_sizes: [1, {batch}]}}
    slo: {{latency_p99_ms: 50, error_rate: 0.001}}
  rollout:
    strategy: canary
    traffic: istio
    steps: [{{weight: 10, pause: 10m}}, {{analysis: true}}, {{weight: 50, pause: 30m}}]
    analysis: {{interval: 1m, max_error_rate: 0.01, max_latency_p99_ms: 60}}
  training:
    image: ghcr.io/example/train:1.0.0
    command: [python, -m, train]
    data: {{uri: train/model-{index:05d}/}}
    schedule: {{cron: "{minute} 3 * * *"}}
    gates: [{{metric: roc_auc, min: 0.85}}, {{metric: roc_auc, max_regression: 0.01}}]
  monitoring:
    schedule: {{cron: "{minute} * * * *"}}
    reference: {{uri: monitor/model-{index:05d}/reference.parquet}}
    analysis: {{uri: monitor/model-{index:05d}/analysis/, lookback: 7d}}
    columns: {{timestamp: ts, prediction: y_pred, score: y_proba, target: label_true}}
    drift: {{univariate: {{}}, multivariate: {{}}}}
    performance: {{estimator: cbpe, metrics: [roc_auc, f1]}}
    data_quality: {{}}
  alerts:
    - {{name: drift, when: {{signal: drift}}, severity: warning, route: slack}}
    - name: auc
      when: {{signal: estimated_performance, metric: roc_auc, below: 0.8}}
      severity: critical
      route: oncall
    - {{name: slow, when: {{signal: latency_p99_ms, above: 80}}, severity: critical, route: oncall}}
  environments:
    dev: {{serving: {{replicas: {{min: 1, max: 2}}}}}}
"""


def generate(specs: Path, models: int) -> None:
    """Write the synthetic spec tree: one FeatureSet per ten models."""
    (specs / "featuresets").mkdir(parents=True)
    (specs / "models").mkdir()
    (specs / "project.yaml").write_text(PROJECT, encoding="utf-8")
    for index in range((models + 9) // 10):
        text = FEATURESET.format(index=index)
        (specs / "featuresets" / f"features-{index}.yaml").write_text(text, encoding="utf-8")
    for index in range(models):
        text = MODEL.format(
            index=index,
            team=index % 7,
            featureset=index // 10,
            batch=(16, 32, 64)[index % 3],
            minute=index % 60,
        )
        (specs / "models" / f"model-{index:05d}.yaml").write_text(text, encoding="utf-8")
