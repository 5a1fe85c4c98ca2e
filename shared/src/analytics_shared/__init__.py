"""Contract shared by the ETL and API services."""
