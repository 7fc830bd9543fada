"""stepc.tables."""
