"""Lowering a FeatureSet's spec and the project's images to plain records."""

from __future__ import annotations

from compiler.ir.featureset import FeatureIR, FeatureSourceIR, ImagesIR, RangeIR
from compiler.lowering import lower_featureset, lower_images
from compiler.spec.featureset import FeatureSetSpec
from compiler.spec.project import Images

FEATURESET = FeatureSetSpec.model_validate(
    {
        "version": 2,
        "entity": "customer_id",
        "timestamp": "event_time",
        "source": {"uri": "features/customers.parquet"},
        "features": [
            {"name": "age", "dtype": "float32", "kind": "continuous", "range": {"min": 18}},
            {"name": "tier", "dtype": "string", "kind": "categorical", "values": ["a", "b"]},
        ],
    }
)


def test_a_featureset_keeps_its_columns_in_order() -> None:
    featureset = lower_featureset(FEATURESET)
    assert (featureset.version, featureset.entity, featureset.timestamp) == (
        2,
        "customer_id",
        "event_time",
    )
    assert featureset.source == FeatureSourceIR("features/customers.parquet", "parquet")
    assert featureset.features == (
        FeatureIR("age", "float32", "continuous", RangeIR(18, None), None, None),
        FeatureIR("tier", "string", "categorical", None, ("a", "b"), None),
    )
    hash(featureset)  # frozen all the way down: no list or dict is left in it


def test_images_are_plain_strings() -> None:
    images = Images(runtime="ghcr.io/acme/kiln:1", triton="nvcr.io/triton:24.05")
    assert lower_images(images) == ImagesIR("ghcr.io/acme/kiln:1", "nvcr.io/triton:24.05")
