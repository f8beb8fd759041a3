//! Client for the Remnawave panel 3.x API: users, nodes, squads, system stats.
