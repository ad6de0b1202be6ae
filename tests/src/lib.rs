//! Helpers for cross-service tests.
