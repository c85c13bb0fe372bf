"""The spec language: one module per kind, plus shared field types."""

from compiler.spec.documents import FeatureSetDoc, ModelDoc, ProjectDoc, SpecDocument

__all__ = ["FeatureSetDoc", "ModelDoc", "ProjectDoc", "SpecDocument"]
