"""stepc.emit.keras."""
