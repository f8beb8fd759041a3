//! Integration tests of the api over HTTP, on PostgreSQL (with Redis) and on SQLite (standalone).

mod errors;
mod health;
mod helpers;
mod lifecycle;
mod openapi;
mod plans;
