//! cryptobot (being built).
