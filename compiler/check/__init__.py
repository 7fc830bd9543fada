"""stepc.check."""
