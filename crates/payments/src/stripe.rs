//! stripe (being built).
