"""Output checks: what the targets rendered, against the rules of the systems that read it.

Triton's load-time rules (`triton_rules`), strict schemas of every Kubernetes object
and custom resource (`schemas`), and names, labels and references across the
manifests (`manifests`). Rules on the specs themselves are in `compiler/rules/`.
"""
