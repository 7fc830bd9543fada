"""stepc.emit."""
