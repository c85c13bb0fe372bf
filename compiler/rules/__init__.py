"""Spec rules: what a spec must satisfy, checked while resolving (`compiler/resolve/`).

Each rule returns `Finding`s, paths in the spec document without positions; resolve
places them at the file, line and column of the value (an overlay's, where one set
it). Output checks, run on what the targets rendered, are in `compiler/checks/`.
"""
