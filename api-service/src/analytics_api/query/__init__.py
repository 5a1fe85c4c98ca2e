"""Query path: SQL validation, execution against the snapshot, serialization, result cache."""
