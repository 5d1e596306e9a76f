//! The agent must never pull the server's stack (leptos, sqlx, axum) into its build.

use std::process::Command;

#[test]
fn no_server_crates_in_the_agent_tree() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = Command::new(&cargo)
        .args(["tree", "-p", "agent", "-e", "normal", "--features", "client", "--prefix", "none"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) => {
            eprintln!("note: cannot run {cargo} ({e}); skipping the dependency check");
            return;
        }
    };
    assert!(output.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&output.stderr));
    let tree = String::from_utf8_lossy(&output.stdout);
    assert!(tree.lines().any(|l| l.starts_with("agent ")), "unexpected cargo tree output:\n{tree}");
    let forbidden: Vec<&str> =
        tree.lines().filter(|l| ["leptos", "sqlx", "axum"].iter().any(|p| l.starts_with(p))).collect();
    assert!(forbidden.is_empty(), "server/UI crates in the agent's tree: {forbidden:?}");
}
