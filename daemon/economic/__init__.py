"""economic layer (see DESIGN.md, Layers)."""
