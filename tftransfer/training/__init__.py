"""The training loop, its optimizer and its distribution strategy."""
