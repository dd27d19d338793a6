"""scr engine: storage, ingest, linking, the combined record and its API."""
