"""stepc.lower."""
