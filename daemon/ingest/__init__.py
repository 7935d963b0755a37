"""ingest layer (see DESIGN.md, Layers)."""
