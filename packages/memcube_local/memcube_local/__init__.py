"""The embedded default: `memcube serve` (the API and an in-process worker in one process) on
SQLite files, with the MiniLM embedder run locally; and the `memcube` command. Not in the Lambda
layer: the functions run the `memcube` package's AWS backend alone."""
