"""Alembic migrations of the store's schema, applied by `open_store` and `tollway migrate`."""
