"""The envelope every spec file shares: apiVersion, kind, metadata, spec."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from compiler.spec.featureset import FeatureSetSpec
from compiler.spec.model import ModelSpec
from compiler.spec.project import ProjectSpec
from compiler.spec.types import Name, SpecModel

MODEL_NAME_MAX = 40  # keeps every derived Kubernetes name within its budget


class Metadata(SpecModel):
    """Who and what the object is."""

    name: Name = Field(description="DNS-1123 name, unique per kind.")
    owner: str | None = Field(None, description="Team or person responsible.")
    description: str | None = Field(None, description="What it is for.")
    labels: dict[str, str] = Field(default_factory=dict, description="Free-form labels.")


class ProjectDoc(SpecModel):
    """A Project spec file."""

    apiVersion: Literal["kiln/v1alpha1"] = Field(description="Always kiln/v1alpha1.")
    kind: Literal["Project"] = Field(description="Project.")
    metadata: Metadata = Field(description="Name and ownership.")
    spec: ProjectSpec = Field(description="The platform.")


class FeatureSetDoc(SpecModel):
    """A FeatureSet spec file."""

    apiVersion: Literal["kiln/v1alpha1"] = Field(description="Always kiln/v1alpha1.")
    kind: Literal["FeatureSet"] = Field(description="FeatureSet.")
    metadata: Metadata = Field(description="Name and ownership.")
    spec: FeatureSetSpec = Field(description="The features.")


class ModelDoc(SpecModel):
    """A Model spec file."""

    apiVersion: Literal["kiln/v1alpha1"] = Field(description="Always kiln/v1alpha1.")
    kind: Literal["Model"] = Field(description="Model.")
    metadata: Metadata = Field(description="Name and ownership.")
    spec: ModelSpec = Field(description="The model.")


SpecDocument = ProjectDoc | FeatureSetDoc | ModelDoc
KINDS: dict[str, type[ProjectDoc] | type[FeatureSetDoc] | type[ModelDoc]] = {
    "Project": ProjectDoc,
    "FeatureSet": FeatureSetDoc,
    "Model": ModelDoc,
}
