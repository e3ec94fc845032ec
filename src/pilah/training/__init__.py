"""Training: run folders that can be resumed, and the strategies that fill them (`strategies.py`)."""
