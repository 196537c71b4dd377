//! VOSI and DALI documents (placeholder).
