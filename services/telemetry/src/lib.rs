//! akidb-telemetry
