"""LSP glue: one module per feature, each with `register(server)`; logic lives elsewhere."""
