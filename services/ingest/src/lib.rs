//! akidb-ingest
