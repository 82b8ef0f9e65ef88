"""Student language models and the graph encoder."""
