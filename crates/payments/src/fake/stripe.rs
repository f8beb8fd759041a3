//! Fake stripe (being built).
