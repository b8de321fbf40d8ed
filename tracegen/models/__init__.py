"""Models: the built-in networks generated in code, FLOPs counting, and resolving --model."""
