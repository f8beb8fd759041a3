//! A fake Remnawave 3.x panel on loopback for tests and demos, with fault injection and signed webhooks.
