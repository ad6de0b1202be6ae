//! akidb-query
