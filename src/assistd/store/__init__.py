"""Storage: tables, repositories, migrations and the blob store."""
