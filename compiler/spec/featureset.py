"""The FeatureSet kind: the columns a model consumes, with their roles."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from compiler.spec.types import ColumnName, PositiveInt, SpecModel, Uri, fail

FeatureDtype = Literal["float32", "float64", "int32", "int64", "string", "bool"]


class Range(SpecModel):
    """Expected bounds of a continuous feature (data-quality checks)."""

    min: float | None = Field(None, description="Lowest expected value.")
    max: float | None = Field(None, description="Highest expected value.")

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise fail("KILN1105", f"range min {self.min} is above max {self.max}")
        return self


class Feature(SpecModel):
    """One column: its type and its role for monitoring."""

    name: ColumnName = Field(description="Column name.")
    dtype: FeatureDtype = Field(description="The model's input type for this column.")
    kind: Literal["continuous", "categorical"] = Field(
        description="Role in monitoring; never inferred from the dtype."
    )
    range: Range | None = Field(None, description="Expected bounds (continuous only).")
    values: list[str | int | bool] | None = Field(
        None, min_length=1, description="Allowed values (categorical only)."
    )
    description: str | None = Field(None, description="What the column means.")

    @model_validator(mode="after")
    def _role_fits(self) -> Feature:
        if self.kind == "continuous" and self.dtype in ("string", "bool"):
            raise fail(
                "KILN1105",
                f"feature `{self.name}` is {self.dtype} and cannot be continuous; "
                "make it categorical",
            )
        if self.kind == "categorical" and self.range is not None:
            raise fail("KILN1105", f"feature `{self.name}` is categorical and cannot have a range")
        if self.kind == "continuous" and self.values is not None:
            raise fail("KILN1105", f"feature `{self.name}` is continuous and cannot list values")
        return self


class Source(SpecModel):
    """Where the feature rows are read from."""

    uri: Uri = Field(description="File or prefix of the rows.")
    format: Literal["parquet", "csv"] = Field("parquet", description="File format.")


class FeatureSetSpec(SpecModel):
    """A versioned set of features with entity and event-time columns."""

    version: PositiveInt = Field(description="Version; models pin name@version.")
    entity: ColumnName = Field(description="Entity key column.")
    timestamp: ColumnName = Field(description="Event-time column (point-in-time joins).")
    source: Source = Field(description="Where rows come from.")
    features: list[Feature] = Field(min_length=1, description="The feature columns.")
