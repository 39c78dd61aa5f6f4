"""Text-to-video semantic search: a text encoder (MiniLM), the zero-shot text space of library
frames, and ranking library videos for a text query."""

TEXT_MODEL_FORMAT = "vcopy.text-model/1"  # the torch weights ``vcopy train text`` writes
TEXT_MODEL_ONNX_FORMAT = "vcopy.text-model-onnx/1"  # the same model as search runs it
TEXT_MODEL_RECORD_KEY = "vcopy.text_model"  # the ONNX file's metadata: format, config, how it was made
MAX_TEXT_MODEL_BYTES = 256 << 20  # the largest network ``vcopy.text.model`` allows is ~200 MB
