//! Loopback fakes of the gateways, speaking their real wire formats, driven by our real clients in tests.

pub mod cryptobot;
pub mod stripe;
pub mod yookassa;
