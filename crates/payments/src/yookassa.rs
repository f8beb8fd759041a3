//! yookassa (being built).
