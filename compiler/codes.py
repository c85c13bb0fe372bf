"""Every diagnostic code Kiln can print, with a title and what to do about it.

Codes are stable: once released a code keeps its meaning. `docs/errors.md` is
generated from this table (`python -m compiler.docs`) and a test keeps the two
in step.
"""

from __future__ import annotations

# code -> (title, what to do)
CODES: dict[str, tuple[str, str]] = {
    # 10xx: reading files
    "KILN1001": ("File is not UTF-8", "Save the spec as UTF-8."),
    "KILN1002": ("File too large", "Specs are limited to 1 MiB; split the file."),
    "KILN1003": ("Empty file", "Write a spec or delete the file."),
    "KILN1004": ("Several documents in one file", "Keep one object per file."),
    "KILN1005": ("YAML syntax error", "Fix the indentation or quoting at the position shown."),
    "KILN1006": ("Tab character", "Indent with spaces; YAML does not allow tabs there."),
    "KILN1007": ("Duplicate key", "Keep one of the two keys."),
    "KILN1008": (
        "Document too large once aliases are expanded",
        "Write values out instead of nesting aliases (protects against alias bombs).",
    ),
    "KILN1009": ("Key is not a string", "Quote the key."),
    "KILN1010": ("Unsupported YAML tag", "Remove the `!tag`; specs use plain YAML."),
    "KILN1011": ("Spec is not a mapping", "Start with apiVersion, kind, metadata, spec."),
    "KILN1012": ("File cannot be read", "Check permissions."),
    "KILN1013": ("Number too long", "Write a number within the field's range, or quote it."),
    "KILN1014": (
        "Character not allowed",
        "Delete it, or write it as an escape (\\uXXXX) in a double-quoted string.",
    ),
    "KILN1015": (
        "File name Kiln cannot write into its output",
        "Rename the file with letters, digits, `.`, `_`, `-` and `/` only.",
    ),
    # 11xx: structure
    "KILN1101": ("Unknown field", "Fix the spelling (a suggestion is shown) or remove it."),
    "KILN1102": ("Missing required field", "Add the field."),
    "KILN1103": ("Wrong type", "Write a value of the type shown."),
    "KILN1104": ("Value not among the allowed choices", "Use one of the values listed."),
    "KILN1105": ("Invalid value", "Change the value so it meets the rule shown."),
    "KILN1111": (
        "Alert route needs exactly one target",
        "Keep one of alertmanager, slack, webhook.",
    ),
    "KILN1112": ("Unsupported apiVersion", "Use `apiVersion: kiln/v1alpha1`."),
    "KILN1113": ("Unknown kind", "Use Project, FeatureSet or Model."),
    "KILN1114": (
        "Field an ensemble does not use",
        "Remove it: an ensemble serves its steps' artifacts, each step on one instance.",
    ),
    # 12xx: value syntax
    "KILN1201": ("Not a DNS-1123 name", "Lower-case letters, digits and '-', at most 63."),
    "KILN1202": ("Not a Kubernetes quantity", "Write e.g. '500m', '4', '16Gi'."),
    "KILN1203": ("Not a duration", "Write e.g. '30s', '10m', '1h30m', '7d'."),
    "KILN1204": (
        "Not a cron expression, or one that never runs",
        "Write five fields: minute hour day month weekday, for a date that exists.",
    ),
    "KILN1205": ("Not an IANA time zone", "Write e.g. 'Europe/Amsterdam' or 'UTC'."),
    "KILN1206": ("Not a sha256 digest", "Write the 64 hex digits that `sha256sum` prints."),
    "KILN1207": ("Not a URI", "Write scheme://bucket/path, or a path relative to storage."),
    "KILN1208": ("Not an image reference", "Write registry/repo:tag or registry/repo@sha256:..."),
    "KILN1209": (
        "Secret value in a spec",
        "Keep it in a Kubernetes Secret and refer to it (the hint names a reference the field "
        "accepts); the secret is shown redacted.",
    ),
    "KILN1210": ("Not a FeatureSet reference", "Write name@version."),
    "KILN1211": ("Not a column name", "Use letters, digits and '_'."),
    "KILN1230": (
        "Not a trusted public key",
        "Paste the PEM of an elliptic-curve public key (P-256, P-384 or P-521).",
    ),
    "KILN1231": (
        "Not a signer identity or OIDC issuer",
        "Write the identity without spaces and the issuer as an https URL.",
    ),
    "KILN1212": (
        "Template syntax in a spec value",
        "Remove '{{' or the Kiln step token: Argo, Argo CD and the pipeline would evaluate it.",
    ),
    "KILN1213": (
        "Not a Kubernetes qualified name",
        "An optional DNS prefix and '/', then up to 63 of [A-Za-z0-9-_.], e.g. nvidia.com/gpu.",
    ),
    "KILN1214": (
        "Not a Kubernetes label value",
        "Up to 63 of [A-Za-z0-9-_.], starting and ending with a letter or digit.",
    ),
    "KILN1215": (
        "Not a git revision or repository folder",
        "Use letters, digits, '.', '_', '+', '-' and '/'; no '..'.",
    ),
    # 13xx: references between specs
    "KILN1301": ("Duplicate object", "Two specs of one kind share a name; rename one."),
    "KILN1302": ("Duplicate entry", "Two entries of one list share a name; rename one."),
    "KILN1303": ("Project missing or repeated", "Keep exactly one Project spec."),
    "KILN1304": ("Unknown FeatureSet", "Refer to an existing FeatureSet name@version."),
    "KILN1305": ("Unknown alert route", "Refer to a route in the Project's alert_routes."),
    "KILN1306": ("Unknown environment", "Override only environments the Project declares."),
    "KILN1307": (
        "Unknown model version",
        "serving.version must be one of versions; leave it out until a version is trained.",
    ),
    "KILN1308": ("Field cannot be overridden", "Override serving, rollout, training, ..."),
    "KILN1309": ("Unknown feature", "Refer to a feature of the model's FeatureSet."),
    "KILN1310": ("Column used twice", "Target and monitoring columns must not be features."),
    "KILN1311": ("Metric not available for the task", "Use a metric the task defines."),
    "KILN1312": ("Model name too long", "Model names have at most 40 characters."),
    "KILN1314": ("Reserved name", "generated/argocd/ holds the Argo CD objects; rename it."),
    # 14xx: serving and rollout consistency
    "KILN1401": ("GPU instance group without GPUs", "Set serving.resources.gpus >= 1."),
    "KILN1402": ("GPU index out of range", "Indices must be below serving.resources.gpus."),
    "KILN1403": ("Dynamic batching without batching", "Set max_batch_size > 0."),
    "KILN1404": ("Batch size above max_batch_size", "Lower it or raise max_batch_size."),
    "KILN1405": ("Settings of another strategy", "Remove them or change rollout.strategy."),
    "KILN1406": ("Strategy cannot be expressed", "Use traffic: istio for shadow and ab."),
    "KILN1407": ("GPU quota exceeded", "Lower replicas.max or GPUs, or raise the quota."),
    "KILN1408": ("Incomplete alert condition", "Give the threshold the signal needs."),
    "KILN1409": ("Estimator does not fit the task", "cbpe for classification, dle for regression."),
    "KILN1410": ("Analysis step without analysis", "Add rollout.analysis."),
    "KILN1411": ("Autoscaling needs room", "Set replicas.max above replicas.min."),
    "KILN1412": ("Analysis checks nothing", "Set a threshold, an SLO, or smoke_test: true."),
    "KILN1413": ("Strategy settings missing", "Add the settings block the strategy needs."),
    "KILN1414": ("Canary weights go down", "Order the canary steps by rising weight."),
    "KILN1415": ("Alert watches an uncomputed signal", "Enable the signal in monitoring."),
    "KILN1416": ("GPU indices on a CPU group", "Remove them, or make the group kind: gpu."),
    "KILN1417": ("GPUs no instance group uses", "Set resources.gpus: 0, or add a gpu group."),
    "KILN1418": ("Analysis could pass on nothing", "Raise count above the two limits."),
    "KILN1421": (
        "Canary weight the pod count cannot give",
        "Use a weight the hint names, change replicas.min, or set rollout.traffic: istio.",
    ),
    "KILN1419": (
        "GPUs asked for in an environment without GPUs",
        "Move the model to CPU in that environment's overlay (resources.gpus: 0, "
        "instance_groups of kind cpu), or declare the environment's GPUs.",
    ),
    "KILN1420": (
        "GPU metric on a model without GPUs",
        "Scale on queue_time_us or cpu_utilization, or give the model GPUs.",
    ),
    "KILN1430": (
        "Shadow-only quality threshold",
        "Use max_prediction_shift, or set rollout.strategy: shadow.",
    ),
    "KILN1431": (
        "Prediction-shift distance does not fit the task",
        "jensen_shannon or psi for classifiers, wasserstein or ks for regression.",
    ),
    "KILN1432": (
        "Quality threshold without monitoring columns",
        "Add a monitoring section with columns, or remove the threshold.",
    ),
    "KILN1433": ("Agreement on a regression model", "Use max_mean_abs_difference."),
    "KILN1434": (
        "Quality threshold without a Pushgateway",
        "Set the environment's pushgateway_url, or remove the threshold there.",
    ),
    "KILN1435": (
        "Analysis reads every environment's captured traffic",
        "Leave monitoring.analysis out to read this environment's partition, or name it.",
    ),
    # 15xx: name budgets
    "KILN1501": ("Derived name too long", "Shorten the model name."),
    # 16xx: environment policies
    "KILN1601": ("Image not pinned by digest", "Use image@sha256:... in this environment."),
    "KILN1602": ("Artifact without sha256", "Add artifact.sha256."),
    "KILN1603": ("Too few replicas", "Raise serving.replicas.min to the policy's minimum."),
    "KILN1604": ("Rollout without analysis", "Add rollout.analysis and an analysis step."),
    "KILN1605": (
        "Cluster component older than Kiln supports",
        "Upgrade it to the minimum version the README lists, or correct the declaration.",
    ),
    "KILN1606": (
        "Prometheus would not select the environment's objects",
        "Add cluster.prometheus_selector's labels to the environment's monitoring_labels.",
    ),
    "KILN1607": (
        "Alertmanager address matches no Service of the Prometheus Operator",
        "Use the alertmanager-operated Service of the Alertmanager's namespace.",
    ),
    "KILN1608": (
        "Served version not signed",
        "Publish it with a signing key and add artifact.signature (publish's version.yaml).",
    ),
    "KILN1609": (
        "Signatures required but no signer trusted",
        "List signing.public_keys or signing.identities in the environment.",
    ),
    "KILN1610": (
        "Location outside the environment's storage",
        "In a cluster environment, write a path relative to the store, or a URI under it.",
    ),
    "KILN1611": (
        "Storage scheme not allowed in a cluster environment",
        "Use an object store (s3://, gs://, az://) or https:// for a cluster's storage.",
    ),
    "KILN1612": (
        "Route sends secrets without https",
        "Use an https:// URL for a webhook whose headers come from Secrets.",
    ),
    "KILN1620": (
        "Prometheus outside the namespace that may scrape served models",
        "Set network.monitoring_namespace to the namespace of the Prometheus that scrapes.",
    ),
    "KILN1621": (
        "`network` in a local environment",
        "Remove it: NetworkPolicies are rendered for cluster environments only.",
    ),
    "KILN1630": (
        "Variable name not allowed",
        "Name it as a shell variable (letters, digits, '_'), not starting with KILN_.",
    ),
    "KILN1631": (
        "Trained versions would be unsigned where signatures are required",
        "Give the environment signing.key_secret, or trust the keyless identity that publishes.",
    ),
    "KILN1632": (
        "Signing key Secret in a local environment",
        "Remove signing.key_secret: `kiln run --local` signs with this machine's key pair.",
    ),
    # 1640-1649: a model with no version yet
    "KILN1640": (
        "Signature required before the first version",
        "Declare spec.signature: with no version there is no model file to read it from.",
    ),
    "KILN1641": (
        "Serving alert left out: no version served",
        "Nothing to do until a version serves; then set serving.version and the alert applies.",
    ),
    "KILN1642": (
        "Nothing to deploy in a cluster environment",
        "Add a training, monitoring or batch block, or serve a version.",
    ),
    # 1660-1669: batch scoring jobs
    "KILN1660": ("Batch job declared twice", "Give each batch job of a model its own name."),
    "KILN1661": (
        "Batch job has no version to score with",
        "Set the job's version to a declared version, or serve one (serving.version).",
    ),
    "KILN1662": (
        "Batch output overlaps its input",
        "Write predictions to a folder that is neither the input nor inside or above it.",
    ),
    "KILN1663": (
        "Batch output column collides with an input column",
        "Rename the monitoring column (monitoring.columns) so no feature, entity or "
        "timestamp column has its name.",
    ),
    "KILN1664": (
        "Batch job name too long",
        "Shorten the job name: the model name, `-batch-` and it form a CronWorkflow name "
        "of at most 52 characters.",
    ),
    "KILN1665": (
        "Batch job on a version Kiln cannot score",
        "Score an ONNX version: batch scoring runs onnxruntime (docs/serving.md).",
    ),
    "KILN1650": (
        "Monitoring without analysis data",
        "Name monitoring.analysis.uri, or turn serving.capture on to monitor served traffic.",
    ),
    "KILN1651": (
        "Capture cannot find the prediction or probability output",
        "Export a label output and a floating probability output, or turn capture off.",
    ),
    "KILN1652": (
        "Two captured columns share a name",
        "Rename the monitor's column so request_id, model_version, environment, the inputs "
        "and the monitor's columns are all distinct.",
    ),
    "KILN1654": (
        "Name taken by the capture step",
        "Rename the ensemble step `capture` or the tensor whose name starts with "
        "`kiln.answer.`: with capture on, the ensemble's capture step uses them.",
    ),
    # 17xx: model signatures
    "KILN1701": (
        "Artifact not found",
        "Fix the path, or train a first version with `kiln run NAME --local` and apply the "
        "spec change it writes.",
    ),
    "KILN1702": ("Model file unreadable", "Check that the file is a valid ONNX model."),
    "KILN1703": ("Artifact digest mismatch", "Update artifact.sha256 or restore the file."),
    "KILN1704": ("Inputs differ from the signature", "Make the spec match the model."),
    "KILN1705": ("Outputs differ from the signature", "Make the spec match the model."),
    "KILN1706": ("Unsupported tensor type", "Export without sequences, maps or bfloat16."),
    "KILN1707": ("Batch dimension not variable", "With max_batch_size > 0, dim 0 must be -1."),
    "KILN1708": ("Signature required", "Declare spec.signature for remote artifacts."),
    "KILN1709": ("Inputs differ from the FeatureSet", "Align model inputs and features."),
    "KILN1710": ("Tensor declared twice", "Give every input and output its own name."),
    "KILN1720": (
        "TorchScript inputs differ from forward()'s arguments",
        "Name each input after the forward() argument it feeds, one input per argument.",
    ),
    "KILN1725": (
        "Folder artifact holds a link or an unsafe name",
        "Copy the files themselves into the folder; no links, no names leading out of it.",
    ),
    "KILN1726": (
        "execution_env is not a .tar.gz archive",
        "Point python.execution_env at the archive `conda pack` writes (.tar.gz).",
    ),
    "KILN1727": (
        "execution_env archive not found",
        "Fix python.execution_env, or pack the environment at that path.",
    ),
    "KILN1730": (
        "Class labels do not fit the task",
        "Multiclass models list their classes; binary ones list two; regression none.",
    ),
    "KILN1731": (
        "Class labels disagree",
        "The probability output and the score columns hold one entry per class.",
    ),
    "KILN1732": (
        "XGBoost model from a version Kiln has not checked",
        "Save the model with XGBoost 3 or earlier; newer writers may be misread silently.",
    ),
    "KILN1733": (
        "XGBoost model with outputs Kiln cannot serve",
        "Kiln serves one target (or one score per class): train one model per target.",
    ),
    "KILN1734": (
        "XGBoost file is not the format its model_type names",
        "Set fil.model_type to the file's format (xgboost_ubj, xgboost_json).",
    ),
    "KILN1711": (
        "Artifact outside the project",
        "Keep local models under the project folder; links must not lead out of it.",
    ),
    "KILN1712": ("Artifact too large", "An ONNX file holds at most 2 GiB; check the path."),
    "KILN1740": (
        "Training declared in two forms, or in neither",
        "Write `trainer` for Kiln's built-in trainer, or `image` and `command` for your own.",
    ),
    "KILN1741": ("Unknown estimator", "Use an estimator of the library listed in the hint."),
    "KILN1742": ("Estimator does not fit the task", "Use a classifier or regressor as listed."),
    "KILN1743": (
        "Estimator parameter not allowed",
        "Use a parameter the estimator takes; seed and threads are Kiln's.",
    ),
    "KILN1744": ("Estimator parameter is not a plain value", "Write a number, boolean or name."),
    "KILN1745": (
        "Signature outputs differ from the trainer's",
        "Declare label and probabilities (classifiers) or prediction (regression).",
    ),
    "KILN1746": (
        "Feature type the trainer does not take",
        "Declare boolean features as int64 with values [0, 1].",
    ),
    "KILN1747": (
        "Estimator parameter of the wrong type or out of range",
        "Write a value of the type, and within the range, that the library documents.",
    ),
    "KILN1748": (
        "Native output from a library without one",
        "Use output onnx, or an xgboost estimator: Triton serves no scikit-learn file.",
    ),
    "KILN1749": (
        "Native output with text features",
        "Encode text features as numbers in the FeatureSet, or use output onnx.",
    ),
    "KILN1750": (
        "Setting for another format",
        "Remove the block, or set the version's format to the one it configures.",
    ),
    "KILN1751": (
        "FIL backend setting refused",
        "Fix the setting named: the FIL backend would refuse or ignore it.",
    ),
    "KILN1752": (
        "TensorRT plan without a GPU",
        "Serve TensorRT plans on GPU instances in a cluster environment.",
    ),
    "KILN1753": (
        "Artifact is not of its format",
        "Save the model in the format declared, or declare the format it has.",
    ),
    "KILN1754": (
        "model.py without TritonPythonModel",
        "Define class TritonPythonModel with an execute(self, requests) method.",
    ),
    "KILN1755": (
        "Signature required for this format",
        "The file names no tensors: declare spec.signature.",
    ),
    "KILN1756": (
        "Tree model features differ from the FeatureSet",
        "Train on the FeatureSet's numeric features, in its order.",
    ),
    "KILN1757": (
        "Signature differs from what FIL serves",
        "Declare input__0 and output__0 as FIL serves them, or leave the signature out.",
    ),
    "KILN1758": (
        "TorchScript tensor name Triton cannot bind",
        "Name outputs <name>__<index>; inputs after forward()'s arguments, which are "
        "named after the FeatureSet's features (KILN1709).",
    ),
    "KILN1760": (
        "Rollout quality thresholds on an ensemble that is not captured",
        "Turn serving.capture on in this environment (the gate compares captured rows), or "
        "remove the quality thresholds.",
    ),
    "KILN1761": (
        "GPUs requested for an ensemble",
        "Set serving.resources.gpus to 0: every step of an ensemble runs on a CPU instance.",
    ),
    "KILN1770": ("Ensemble step named twice", "Give every step its own name."),
    "KILN1771": (
        "Ensemble output produced by no step",
        "Map a step output to it in that step's output_map.",
    ),
    "KILN1772": ("Ensemble input feeds no step", "Map it in a step's input_map, or remove it."),
    "KILN1773": (
        "Ensemble tensor without exactly one producer",
        "Feed each step input from an ensemble input or one step's output.",
    ),
    "KILN1774": (
        "Ensemble edge dtype or shape mismatch",
        "Make producer and consumer the same dtype, rank and fixed dimensions (-1 matches any).",
    ),
    "KILN1776": ("Ensemble steps form a cycle", "Read only ensemble inputs and earlier outputs."),
    "KILN1777": ("Ensemble step leads to no output", "Remove the step or map its outputs."),
    "KILN1778": (
        "Ensemble batching inconsistent",
        "Each step batches at least the ensemble's max_batch_size, on dimension 0.",
    ),
    "KILN1779": (
        "Ensemble map names a tensor the step lacks",
        "Map the step's own tensors; every step input must be mapped.",
    ),
    "KILN1780": (
        "Format not served by the local Triton",
        "Serve it in a cluster environment; docs/serving.md says which formats serve locally.",
    ),
    "KILN1781": (
        "Tree model file the local adapter cannot load",
        "Save the model as XGBoost JSON or UBJSON, or as LightGBM text.",
    ),
    "KILN1790": (
        "Class labels a native tree model cannot carry",
        "Recode the target as 0..K-1, or use output onnx, whose graph maps the labels.",
    ),
    "KILN1791": (
        "LightGBM without native output",
        "Set training.trainer.output: native; Kiln exports LightGBM in its own format only.",
    ),
    # 18xx: Triton
    "KILN1802": ("Triton would refuse to load the config", "Fix the setting named."),
    "KILN1803": (
        "Generated manifest is invalid",
        "The spec line shown produced an object its schema or Kubernetes rejects; fix the "
        "setting, or report a bug if the spec is right.",
    ),
    # 19xx: output
    "KILN1901": ("Output path owned by someone else", "Move the file or choose --out."),
    "KILN1902": ("Generated output is stale", "Run `kiln compile` and commit the result."),
    "KILN1903": ("Output cannot be written", "Check permissions and disk space."),
    "KILN1904": (
        "Output folder is a symbolic link",
        "Delete the link, or pass the real folder as --out; Kiln writes through no link.",
    ),
    "KILN1905": (
        "File no longer produced left in place",
        "Delete it yourself: Kiln deletes only a regular file still as it wrote it.",
    ),
    "KILN1906": (
        "Manifest entry outside the output folder",
        "Nothing to do: Kiln ignores the entry and the next compile drops it.",
    ),
}

# Codes once raised and never to be given another meaning: documented, never emitted.
RETIRED: dict[str, str] = {
    "KILN1801": "Triton config rejected by the protobuf. Protobuf's printer always writes "
    "text its parser reads, and the tests parse every rendered config.",
    "KILN1653": "Capture declared for an ensemble (a warning). A declared ensemble is now "
    "captured by a capture step appended to its steps.",
    "KILN1775": "Ensemble not served in a cluster environment yet (a warning). Cluster "
    "environments now render an ensemble's serving pods.",
}


def advice(code: str) -> str:
    """What to do about a problem with `code`, as a hint: for a diagnostic whose own
    message names no remedy, so that every diagnostic says what to do."""
    text = CODES[code][1].rstrip(".")
    return text[:1].lower() + text[1:]
