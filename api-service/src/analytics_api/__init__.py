"""Read-only query API over the latest published DuckDB snapshot."""
