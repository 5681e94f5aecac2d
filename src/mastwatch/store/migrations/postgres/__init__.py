"""PostgreSQL schema migrations (NNNN_name.sql), applied by mastwatch.store.migrate."""
