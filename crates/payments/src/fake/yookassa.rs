//! Fake yookassa (being built).
