"""stepc.parse."""
