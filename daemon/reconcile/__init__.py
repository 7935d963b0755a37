"""reconcile layer (see DESIGN.md, Layers)."""
