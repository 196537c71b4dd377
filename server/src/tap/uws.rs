//! UWS 1.1 (placeholder).
