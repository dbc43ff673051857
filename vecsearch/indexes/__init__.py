"""Index classes: one module per index type (orchestration, validation, persistence hooks)."""
