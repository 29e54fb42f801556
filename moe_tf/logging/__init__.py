"""What a run shows: TensorBoard summaries and the terminal progress output."""
