"""Reading sources: files, object stores and SQL into the canonical shape, with file guards and preflight."""
