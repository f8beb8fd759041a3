//! `cybervpn-panel-fake`: serves the fake panel until interrupted.
fn main() {}
