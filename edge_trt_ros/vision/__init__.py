"""Image views, letterboxing and decoding of detector outputs (numpy only)."""
