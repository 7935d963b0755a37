"""moment layer (see DESIGN.md, Layers)."""
