"""sandbox layer (see DESIGN.md, Layers)."""
