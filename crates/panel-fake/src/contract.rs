//! Checks recorded exchanges and webhooks against JSON Schemas exported from the official
//! `@remnawave/backend-contract` package.
//!
//! The first [`Contract::load`] of a process installs `scripts/remnawave-contract/` with `npm ci` into
//! `<target>/remnawave-contract/<hash>/` and runs its `export.mjs` there; the hash covers the lock file, the
//! manifest and the exporter, so a later run (or process) with the same inputs reuses that folder without npm.
//! `<target>` is `$CARGO_TARGET_DIR` or the workspace's `target/`.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use jsonschema::Validator;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::Exchange;

const SCRIPT_FILES: [&str; 3] = ["package.json", "package-lock.json", "export.mjs"];

/// The two schemas of one route; `None` where the contract declares no body.
struct RouteSchemas {
    request: Option<Validator>,
    response: Option<Validator>,
}

/// The loaded contract: per-route request/response validators and webhook validators.
pub struct Contract {
    version: String,
    routes: HashMap<String, RouteSchemas>,
    webhooks: HashMap<String, Validator>,
}

impl std::fmt::Debug for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contract")
            .field("version", &self.version)
            .field("routes", &self.routes.len())
            .finish_non_exhaustive()
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command.output().map_err(|e| {
        format!("{what}: cannot run it ({e}); Node.js and npm are required for the contract tests")
    })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Installs and exports once per input hash; returns the folder holding `index.json`.
fn prepare() -> Result<PathBuf, String> {
    let scripts = workspace_root().join("scripts/remnawave-contract");
    let mut hasher = Sha256::new();
    let mut contents = Vec::new();
    for name in SCRIPT_FILES {
        let path = scripts.join(name);
        let bytes = fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        hasher.update(name.as_bytes());
        hasher.update(&bytes);
        contents.push((name, bytes));
    }
    let hash = hex::encode(hasher.finalize());
    let root = target_dir().join("remnawave-contract");
    let dir = root.join(&hash[..16]);
    let schemas = dir.join("schemas");
    if schemas.join("index.json").is_file() {
        return Ok(schemas);
    }
    run(Command::new("npm").arg("--version"), "npm --version")?;
    run(Command::new("node").arg("--version"), "node --version")?;
    // Build next to the final folder and rename, so concurrent test processes never see half an install.
    let staging = root.join(format!("{}.tmp-{}", &hash[..16], std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging)
        .map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
    for (name, bytes) in &contents {
        fs::write(staging.join(name), bytes).map_err(|e| format!("cannot write {name}: {e}"))?;
    }
    run(
        Command::new("npm")
            .args([
                "ci",
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
                "--loglevel=error",
            ])
            .current_dir(&staging),
        "npm ci (scripts/remnawave-contract)",
    )?;
    run(
        Command::new("node")
            .args(["export.mjs", "schemas"])
            .current_dir(&staging),
        "node export.mjs",
    )?;
    match fs::rename(&staging, &dir) {
        Ok(()) => Ok(schemas),
        Err(_) if schemas.join("index.json").is_file() => {
            let _ = fs::remove_dir_all(&staging);
            Ok(schemas)
        }
        Err(e) => Err(format!(
            "cannot move {} to {}: {e}",
            staging.display(),
            dir.display()
        )),
    }
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text =
        fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))
}

fn compile(schema: &Value, what: &str) -> Result<Validator, String> {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(schema)
        .map_err(|e| format!("the {what} schema does not compile: {e}"))
}

fn optional_schema(entry: &Value, key: &str, what: &str) -> Result<Option<Validator>, String> {
    match entry.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(schema) => compile(schema, what).map(Some),
    }
}

/// Lists every violation of `instance`, naming where it is.
fn violations(validator: &Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .take(20)
        .map(|e| {
            let at = e.instance_path().to_string();
            format!("at '{}': {e}", if at.is_empty() { "/" } else { &at })
        })
        .collect()
}

impl Contract {
    /// Loads the schemas, installing and exporting the contract package first if this checkout has not yet.
    pub fn load() -> Result<Contract, String> {
        static PREPARED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
        let dir = PREPARED.get_or_init(prepare).clone()?;
        let index = read_json(&dir.join("index.json"))?;
        let version = index["version"].as_str().unwrap_or("?").to_owned();
        let mut routes = HashMap::new();
        for (key, file) in index["routes"].as_object().into_iter().flatten() {
            let entry = read_json(&dir.join(file.as_str().unwrap_or_default()))?;
            routes.insert(
                key.clone(),
                RouteSchemas {
                    request: optional_schema(&entry, "requestBody", &format!("{key} request"))?,
                    response: optional_schema(&entry, "response", &format!("{key} response"))?,
                },
            );
        }
        let mut webhooks = HashMap::new();
        for (scope, file) in index["webhooks"].as_object().into_iter().flatten() {
            let schema = read_json(&dir.join(file.as_str().unwrap_or_default()))?;
            webhooks.insert(
                scope.clone(),
                compile(&schema, &format!("{scope} webhook"))?,
            );
        }
        Ok(Contract {
            version,
            routes,
            webhooks,
        })
    }

    /// The version of `@remnawave/backend-contract` the schemas come from.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The routes with schemas, as `METHOD /api/template`, sorted.
    pub fn routes(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.routes.keys().cloned().collect();
        keys.sort();
        keys
    }

    /// Validates an exchange: its request body (where the contract has one, or must be empty where it has none)
    /// and, for a 2xx answer, its response body (JSON, or empty where the contract declares none).
    pub fn check(&self, exchange: &Exchange) -> Result<(), String> {
        let key = format!("{} {}", exchange.method, exchange.route);
        let schemas = self.routes.get(&key).ok_or_else(|| {
            format!(
                "{key} ({}): no schema in @remnawave/backend-contract {}",
                exchange.path, self.version
            )
        })?;
        let mut problems = Vec::new();
        let empty_body = exchange
            .request_body
            .as_ref()
            .is_none_or(|b| b.as_object().is_some_and(serde_json::Map::is_empty));
        match (&schemas.request, &exchange.request_body) {
            (Some(validator), body) => {
                // A missing body reaches the panel's zod schema as `{}`.
                let body = body
                    .clone()
                    .unwrap_or_else(|| Value::Object(serde_json::Map::new()));
                for v in violations(validator, &body) {
                    problems.push(format!("request {v}"));
                }
            }
            (None, Some(_)) if !empty_body => {
                problems.push("request has a body but the contract declares none".to_owned());
            }
            (None, _) => {}
        }
        if (200..300).contains(&exchange.status) {
            match (&schemas.response, &exchange.response_body) {
                (Some(validator), Some(body)) => {
                    for v in violations(validator, body) {
                        problems.push(format!("response {v}"));
                    }
                }
                (Some(_), None) => {
                    problems.push(format!("response {} has no JSON body", exchange.status))
                }
                (None, Some(_)) => problems.push(format!(
                    "response {} has a body but the contract declares none",
                    exchange.status
                )),
                (None, None) => {}
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{key} ({}{}) violates @remnawave/backend-contract {}:\n  - {}",
                exchange.path,
                exchange
                    .query
                    .as_deref()
                    .map(|q| format!("?{q}"))
                    .unwrap_or_default(),
                self.version,
                problems.join("\n  - ")
            ))
        }
    }

    /// Validates a webhook body against the contract schema of its `scope` (`user`, `node`).
    pub fn check_webhook(&self, body: &Value) -> Result<(), String> {
        let scope = body["scope"].as_str().unwrap_or_default();
        let validator = self
            .webhooks
            .get(scope)
            .ok_or_else(|| format!("webhook scope '{scope}': no schema in the contract"))?;
        let problems = violations(validator, body);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "webhook {} violates @remnawave/backend-contract {}:\n  - {}",
                body["event"],
                self.version,
                problems.join("\n  - ")
            ))
        }
    }
}
