//! What the operator client is built from: an operator laptop or a CI job that signs and
//! uploads releases must not compile (or link) the update server, its web framework or its
//! database driver.

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use serde_json::Value;

/// The host's target triple, as rustc reports it.
fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("rustc -vV runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_owned()
}

/// The crates that `package` needs to build, through normal (not dev or build) dependencies,
/// by name, as `cargo metadata` resolves them for this workspace.
fn normal_dependency_closure(package: &str) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Only this machine's platform: the question is what an operator's build compiles, and
    // other platforms' crates may not be downloaded (offline, they would fail the command).
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", &host_triple()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: HashMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .expect("resolve nodes")
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let start = names
        .iter()
        .find(|(_, name)| **name == package)
        .map(|(id, _)| *id)
        .expect("the package is in the workspace");
    let mut seen = BTreeSet::new();
    let mut todo = vec![start];
    while let Some(id) = todo.pop() {
        for dep in nodes[id]["deps"].as_array().into_iter().flatten() {
            let normal = dep["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k["kind"].is_null());
            let dep_id = dep["pkg"].as_str().unwrap();
            if normal && seen.insert(names[dep_id].to_owned()) {
                todo.push(dep_id);
            }
        }
    }
    seen
}

#[test]
fn the_client_is_built_without_the_server_its_web_framework_or_its_database() {
    let deps = normal_dependency_closure("fota-client");
    let server_side: Vec<&String> = deps
        .iter()
        .filter(|d| {
            ["fota-server", "axum", "tower-http", "tokio"].contains(&d.as_str())
                || d.starts_with("sqlx")
        })
        .collect();
    assert!(
        server_side.is_empty(),
        "fota-client depends on {server_side:?}"
    );
}
