"""Text-to-video semantic search: a text encoder (MiniLM), the zero-shot text space of library
frames, and ranking library videos for a text query."""
