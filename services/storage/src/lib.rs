//! akidb-storage
