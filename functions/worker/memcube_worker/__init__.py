"""The SQS FIFO worker Lambda."""
