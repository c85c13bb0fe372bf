"""What the compiler renders and the jobs read: one definition of each shared fact.

The task and metric vocabulary, the duration grammar, a model's signature, the
monitor job's configuration, the pipeline steps' flags, what a secret looks like, and
the rule for the user's cache folder, which the compiler and the local tools both keep
there. This package imports nothing from `compiler/` nor from the rest of `runtime/` (a
test enforces it), so the runtime image carries it without the compiler, and the
compiler renders against the same definitions the jobs parse.
"""
