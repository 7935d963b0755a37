"""ops layer (see DESIGN.md, Layers)."""
