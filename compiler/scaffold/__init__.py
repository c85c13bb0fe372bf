"""`kiln new`: specs inferred from a data file (profile -> infer -> documents -> write)."""
