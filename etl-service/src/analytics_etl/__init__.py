"""SQL Server -> DuckDB snapshot ETL."""
