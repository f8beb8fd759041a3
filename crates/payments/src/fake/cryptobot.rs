//! Fake cryptobot (being built).
