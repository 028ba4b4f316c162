"""Version-sensitive imports, in one place."""
