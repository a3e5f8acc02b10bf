//! `cargo xtask tidy`: architecture checks.
//!
//! The layering rules in [`RULES`] are checked against the resolved dependency graph
//! of `cargo metadata --format-version 1 --locked`. Only normal dependencies count
//! (`dep_kinds[].kind == null`): dev- and build-dependencies are neither checked nor
//! followed. The graph is cargo's resolve for the default features, unified across
//! the workspace, so it may show an optional dependency that one member enables for
//! another; that errs on the strict side.
//!
//! Every workspace member's `Cargo.toml` must also say `[lints] workspace = true`
//! (`cargo metadata` does not show lints, so the manifest text is read).

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::util;

/// Selects crates by name.
#[derive(Clone, Copy, Debug)]
enum Sel {
    /// Exactly this crate.
    Name(&'static str),
    /// Every crate whose name starts with this.
    Prefix(&'static str),
    /// Every workspace member: "our crates".
    Ours,
    /// Every workspace member but these.
    OursExcept(&'static [&'static str]),
}

/// How far from a rule's subject the rule looks.
#[derive(Clone, Copy, Debug)]
enum Reach {
    /// The subject's own `[dependencies]`.
    Direct,
    /// Everything the subject's `[dependencies]` pull in, recursively.
    Transitive,
}

/// One layering rule: `subject` must not depend (within `reach`) on a crate that
/// `forbid` selects, unless `allow` names it.
#[derive(Debug)]
struct Rule {
    /// The crates the rule applies to (workspace members only).
    subject: Sel,
    /// Direct or transitive normal dependencies.
    reach: Reach,
    /// The crates the subject must not depend on.
    forbid: &'static [Sel],
    /// Crates that `forbid` selects but that are allowed after all.
    allow: &'static [&'static str],
    /// Why, for the error message.
    why: &'static str,
}

use Reach::{Direct, Transitive};
use Sel::{Name, Ours, OursExcept, Prefix};

/// An async runtime, the HTTP stack, databases and cloud SDKs: I/O.
const IO_STACK: &[Sel] = &[
    Name("tokio"),
    Name("reqwest"),
    Name("hyper"),
    Name("rusqlite"),
    Name("aws-sdk-s3"),
    Name("aws-config"),
];

/// The rules; read each row as "SUBJECT must not depend (REACH) on FORBID, except ALLOW".
#[rustfmt::skip]
const RULES: &[Rule] = &[
    Rule { subject: Name("connectly-model"), reach: Transitive, forbid: IO_STACK, allow: &[],
           why: "the API model does no I/O" },
    Rule { subject: Name("connectly-model"), reach: Transitive, forbid: &[Ours], allow: &[],
           why: "the API model is the bottom layer" },
    Rule { subject: Name("connectly-sink"), reach: Transitive, forbid: IO_STACK, allow: &[],
           why: "the Sink trait is independent of runtimes and storage" },
    Rule { subject: Name("connectly-sink"), reach: Transitive, forbid: &[Name("csv")], allow: &[],
           why: "the Sink trait does not parse CSV; sinks that need rows use connectly-csv" },
    Rule { subject: Name("connectly-sink"), reach: Transitive, forbid: &[Ours], allow: &["connectly-model"],
           why: "the Sink trait builds on the API model only" },
    Rule { subject: Name("connectly-csv"), reach: Transitive, forbid: IO_STACK, allow: &[],
           why: "the CSV schema is pure parsing" },
    Rule { subject: Name("connectly-csv"), reach: Transitive, forbid: &[Ours], allow: &[],
           why: "the CSV schema is independent of our other crates" },
    Rule { subject: Name("connectly-client"), reach: Transitive, forbid: &[Ours], allow: &["connectly-model"],
           why: "the HTTP client knows the API model, not sinks, CSV or the orchestrator" },
    Rule { subject: Prefix("connectly-sink-"), reach: Transitive, forbid: &[Ours],
           allow: &["connectly-model", "connectly-sink", "connectly-csv"],
           why: "a sink builds on the model, the Sink trait and the CSV schema, never on the client, \
                 orchestrator or CLI" },
    Rule { subject: Name("connectly-orchestrator"), reach: Transitive,
           forbid: &[Name("connectly-sync"), Name("connectly-server"), Prefix("connectly-sink-")], allow: &[],
           why: "the orchestrator drives any Sink; the binary picks concrete sinks (dev-dependencies may use them)" },
    Rule { subject: Name("connectly-server"), reach: Transitive,
           forbid: &[Name("connectly-sync"), Prefix("connectly-sink-"), Name("connectly-vendor-fake")], allow: &[],
           why: "the server drives any Sink through the orchestrator; the binary picks concrete sinks and reads \
                 argv and the environment" },
    Rule { subject: Name("connectly-vendor-fake"), reach: Transitive, forbid: &[Ours], allow: &[],
           why: "the vendor stand-in is independent of our crates, so it cannot share their bugs" },
    Rule { subject: OursExcept(&["connectly-sync", "connectly-e2e", "xtask"]), reach: Direct,
           forbid: &[Name("anyhow")], allow: &[],
           why: "library crates return typed errors; anyhow is for the binary, the e2e tests and xtask" },
];

/// The resolved dependency graph, reduced to what the rules need.
#[derive(Debug)]
struct Graph {
    /// Package id → crate name.
    names: HashMap<String, String>,
    /// Workspace member ids, in metadata order.
    members: Vec<String>,
    /// Workspace member id → its manifest.
    manifests: HashMap<String, PathBuf>,
    /// Package id → ids of its normal dependencies.
    normal: HashMap<String, Vec<String>>,
}

/// The string at `key` in `value`, or an error naming `what`.
fn str_field<'a>(value: &'a Value, key: &str, what: &str) -> Result<&'a str> {
    value
        .get(key)
        .and_then(Value::as_str)
        .with_context(|| format!("cargo metadata: {what} has no string `{key}`"))
}

/// The array at `key` in `value`, or an error naming `what`.
fn array_field<'a>(value: &'a Value, key: &str, what: &str) -> Result<&'a Vec<Value>> {
    value
        .get(key)
        .and_then(Value::as_array)
        .with_context(|| format!("cargo metadata: {what} has no array `{key}`"))
}

impl Graph {
    /// Reads `cargo metadata --format-version 1` output (with its `resolve` graph).
    fn from_metadata(meta: &Value) -> Result<Graph> {
        let mut names = HashMap::new();
        let mut manifests = HashMap::new();
        for package in array_field(meta, "packages", "the output")? {
            let id = str_field(package, "id", "a package")?;
            names.insert(id.to_owned(), str_field(package, "name", "a package")?.to_owned());
            manifests.insert(
                id.to_owned(),
                PathBuf::from(str_field(package, "manifest_path", "a package")?),
            );
        }
        let mut members = Vec::new();
        for member in array_field(meta, "workspace_members", "the output")? {
            let id = member
                .as_str()
                .context("cargo metadata: a workspace member is not a string")?;
            if !names.contains_key(id) {
                bail!("cargo metadata: workspace member {id} is not among the packages");
            }
            members.push(id.to_owned());
        }
        manifests.retain(|id, _| members.contains(id));
        let resolve = meta
            .get("resolve")
            .filter(|r| !r.is_null())
            .context("cargo metadata: no `resolve` graph (was --no-deps given?)")?;
        let mut normal = HashMap::new();
        for node in array_field(resolve, "nodes", "the resolve graph")? {
            let id = str_field(node, "id", "a resolve node")?;
            let mut deps = Vec::new();
            for dep in array_field(node, "deps", "a resolve node")? {
                let pkg = str_field(dep, "pkg", "a dependency")?;
                let kinds = array_field(dep, "dep_kinds", "a dependency")?;
                // `kind` is null for a normal dependency, "dev" or "build" otherwise.
                if kinds.iter().any(|k| k.get("kind").is_some_and(Value::is_null)) {
                    deps.push(pkg.to_owned());
                }
            }
            normal.insert(id.to_owned(), deps);
        }
        Ok(Graph {
            names,
            members,
            manifests,
            normal,
        })
    }

    /// The crate name of package `id`.
    fn name<'a>(&'a self, id: &'a str) -> &'a str {
        self.names.get(id).map_or(id, String::as_str)
    }

    /// Whether package `id` is a workspace member.
    fn is_member(&self, id: &str) -> bool {
        self.members.iter().any(|m| m == id)
    }

    /// The packages `from` depends on within `reach`, each with the shortest chain of
    /// crate names from `from` to it (both ends included), in breadth-first order.
    fn dependencies(&self, from: &str, reach: Reach) -> Vec<(&str, Vec<&str>)> {
        let Some((from, _)) = self.names.get_key_value(from) else {
            return Vec::new();
        };
        let from = from.as_str();
        let mut parent: HashMap<&str, &str> = HashMap::new();
        let mut seen: HashSet<&str> = HashSet::from([from]);
        let mut queue: VecDeque<&str> = VecDeque::from([from]);
        let mut order = Vec::new();
        while let Some(id) = queue.pop_front() {
            for dep in self.normal.get(id).into_iter().flatten() {
                if seen.insert(dep.as_str()) {
                    parent.insert(dep.as_str(), id);
                    order.push(dep.as_str());
                    if matches!(reach, Transitive) {
                        queue.push_back(dep.as_str());
                    }
                }
            }
        }
        order
            .into_iter()
            .map(|id| {
                let mut chain = vec![self.name(id)];
                let mut at = id;
                while let Some(&up) = parent.get(at) {
                    chain.push(self.name(up));
                    at = up;
                }
                chain.reverse();
                (id, chain)
            })
            .collect()
    }

    /// Whether `sel` selects package `id`.
    fn selects(&self, sel: Sel, id: &str) -> bool {
        let name = self.name(id);
        match sel {
            Name(n) => name == n,
            Prefix(p) => name.starts_with(p),
            Ours => self.is_member(id),
            OursExcept(except) => self.is_member(id) && !except.contains(&name),
        }
    }

    /// The workspace members that `rule` applies to; an error if a rule names a crate
    /// that is not in the workspace (a renamed crate must not silently drop its rules).
    fn subjects(&self, rule: &Rule) -> Result<Vec<&str>> {
        let subjects: Vec<&str> = self
            .members
            .iter()
            .map(String::as_str)
            .filter(|id| self.selects(rule.subject, id))
            .collect();
        if let (Name(name), true) = (rule.subject, subjects.is_empty()) {
            bail!("tidy rule for `{name}`: no such workspace member (renamed? update xtask/src/tidy.rs)");
        }
        Ok(subjects)
    }
}

/// Checks `rules` against `graph`: one message per forbidden dependency.
fn check_rules(graph: &Graph, rules: &[Rule]) -> Result<Vec<String>> {
    let mut violations = Vec::new();
    for rule in rules {
        for subject in graph.subjects(rule)? {
            for (dep, chain) in graph.dependencies(subject, rule.reach) {
                let name = graph.name(dep);
                if rule.forbid.iter().any(|&sel| graph.selects(sel, dep)) && !rule.allow.contains(&name) {
                    let how = match rule.reach {
                        Direct => "directly",
                        Transitive => "directly or transitively",
                    };
                    violations.push(format!(
                        "forbidden dependency {} -> {name}: {} must not depend {how} on {name} (found: {}): {}",
                        graph.name(subject),
                        graph.name(subject),
                        chain.join(" -> "),
                        rule.why,
                    ));
                }
            }
        }
    }
    Ok(violations)
}

/// Whether a manifest's text sets `[lints] workspace = true` (or top-level
/// `lints.workspace = true`).
fn has_workspace_lints(manifest: &str) -> bool {
    let mut table: Option<String> = None;
    for line in manifest.lines() {
        let line = line.split('#').next().unwrap_or("");
        let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
        if compact.starts_with('[') {
            table = Some(compact.trim_start_matches('[').trim_end_matches(']').to_owned());
            continue;
        }
        match table.as_deref() {
            Some("lints") if compact == "workspace=true" => return true,
            None if compact == "lints.workspace=true" => return true,
            _ => {}
        }
    }
    false
}

/// Checks that every workspace member inherits the workspace lints.
fn check_lints(graph: &Graph) -> Result<Vec<String>> {
    let mut violations = Vec::new();
    for member in &graph.members {
        let path = graph
            .manifests
            .get(member)
            .with_context(|| format!("cargo metadata: no manifest for {}", graph.name(member)))?;
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        if !has_workspace_lints(&text) {
            violations.push(format!(
                "{} does not inherit the workspace lints: add `[lints]\\nworkspace = true` to {}",
                graph.name(member),
                path.display()
            ));
        }
    }
    Ok(violations)
}

/// Runs every check and prints `tidy: N rules checked, ok`, or fails listing each violation.
pub(crate) fn run() -> Result<()> {
    let meta = util::cargo_metadata(&["--locked"])?;
    let graph = Graph::from_metadata(&meta)?;
    let mut violations = check_rules(&graph, RULES)?;
    violations.extend(check_lints(&graph)?);
    if !violations.is_empty() {
        for v in &violations {
            eprintln!("tidy: {v}");
        }
        bail!("tidy: {} violation(s); see above", violations.len());
    }
    println!(
        "tidy: {} rules checked, ok ({} layering rules, workspace lints on {} crates)",
        RULES.len() + 1,
        RULES.len(),
        graph.members.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A package id that differs from the crate name, as real ids do.
    fn id(name: &str) -> String {
        format!("id+{name}#1.0.0")
    }

    /// Synthetic `cargo metadata` output: `members` are workspace members, `others`
    /// third-party crates, and each edge is (from, to, kinds) with kind `None` for normal.
    fn metadata(members: &[&str], others: &[&str], edges: &[(&str, &str, &[Option<&str>])]) -> Value {
        let all: Vec<&str> = members.iter().chain(others).copied().collect();
        let packages: Vec<Value> = all
            .iter()
            .map(|n| json!({ "id": id(n), "name": n, "manifest_path": format!("/ws/{n}/Cargo.toml") }))
            .collect();
        let nodes: Vec<Value> = all
            .iter()
            .map(|n| {
                let deps: Vec<Value> = edges
                    .iter()
                    .filter(|(from, _, _)| from == n)
                    .map(|(_, to, kinds)| {
                        let kinds: Vec<Value> = kinds.iter().map(|k| json!({ "kind": k, "target": null })).collect();
                        json!({ "name": to.replace('-', "_"), "pkg": id(to), "dep_kinds": kinds })
                    })
                    .collect();
                json!({ "id": id(n), "deps": deps, "features": [] })
            })
            .collect();
        json!({
            "packages": packages,
            "workspace_members": members.iter().map(|n| id(n)).collect::<Vec<_>>(),
            "resolve": { "nodes": nodes, "root": null },
            "version": 1,
        })
    }

    const NORMAL: &[Option<&str>] = &[None];
    const DEV: &[Option<&str>] = &[Some("dev")];
    const BUILD: &[Option<&str>] = &[Some("build")];

    fn names<'a>(deps: &[(&'a str, Vec<&'a str>)], graph: &'a Graph) -> Vec<&'a str> {
        deps.iter().map(|(id, _)| graph.name(id)).collect()
    }

    #[test]
    fn walk_follows_normal_edges_only() -> Result<()> {
        let meta = metadata(
            &["a"],
            &["b", "c", "d", "e", "f", "tokio", "hyper"],
            &[
                ("a", "b", NORMAL),
                ("b", "tokio", NORMAL),
                ("a", "c", DEV),
                ("c", "hyper", NORMAL),
                ("a", "d", BUILD),
                ("d", "f", NORMAL),
                // A crate that is both a dev- and a normal dependency is a normal one.
                ("b", "e", &[Some("dev"), None]),
            ],
        );
        let graph = Graph::from_metadata(&meta)?;
        let mut all = names(&graph.dependencies(&id("a"), Transitive), &graph);
        all.sort_unstable();
        assert_eq!(all, ["b", "e", "tokio"]);
        assert_eq!(names(&graph.dependencies(&id("a"), Direct), &graph), ["b"]);
        Ok(())
    }

    #[test]
    fn walk_reports_the_shortest_chain_and_survives_cycles() -> Result<()> {
        // a -> b -> c -> d -> x and a -> e -> x: the chain to x goes through e.
        let meta = metadata(
            &["a"],
            &["b", "c", "d", "e", "x"],
            &[
                ("a", "b", NORMAL),
                ("b", "c", NORMAL),
                ("c", "d", NORMAL),
                ("d", "x", NORMAL),
                ("a", "e", NORMAL),
                ("e", "x", NORMAL),
                ("x", "b", NORMAL),
            ],
        );
        let graph = Graph::from_metadata(&meta)?;
        let deps = graph.dependencies(&id("a"), Transitive);
        assert_eq!(deps.len(), 5);
        let chain = deps
            .iter()
            .find(|(dep, _)| *dep == id("x"))
            .map(|(_, chain)| chain.clone());
        assert_eq!(chain, Some(vec!["a", "e", "x"]));
        let chain = deps
            .iter()
            .find(|(dep, _)| *dep == id("d"))
            .map(|(_, chain)| chain.clone());
        assert_eq!(chain, Some(vec!["a", "b", "c", "d"]));
        Ok(())
    }

    const MEMBERS: &[&str] = &[
        "connectly-model",
        "connectly-client",
        "connectly-csv",
        "connectly-sink",
        "connectly-sink-file",
        "connectly-sink-sqlite",
        "connectly-orchestrator",
        "connectly-server",
        "connectly-sync",
        "connectly-vendor-fake",
        "connectly-e2e",
        "xtask",
    ];
    const THIRD_PARTY: &[&str] = &[
        "serde", "time", "csv", "tokio", "reqwest", "hyper", "rusqlite", "anyhow", "axum", "mio",
    ];

    /// The real layering, in miniature, plus `extra` edges.
    fn workspace(extra: &[(&str, &str, &[Option<&str>])]) -> Result<Vec<String>> {
        let mut edges: Vec<(&str, &str, &[Option<&str>])> = vec![
            ("connectly-model", "serde", NORMAL),
            ("connectly-model", "time", NORMAL),
            ("connectly-client", "connectly-model", NORMAL),
            ("connectly-client", "reqwest", NORMAL),
            ("connectly-client", "axum", DEV),
            ("reqwest", "hyper", NORMAL),
            ("hyper", "tokio", NORMAL),
            ("tokio", "mio", NORMAL),
            ("connectly-csv", "csv", NORMAL),
            ("connectly-sink", "connectly-model", NORMAL),
            ("connectly-sink-file", "connectly-sink", NORMAL),
            ("connectly-sink-file", "tokio", NORMAL),
            ("connectly-sink-sqlite", "connectly-sink", NORMAL),
            ("connectly-sink-sqlite", "connectly-csv", NORMAL),
            ("connectly-sink-sqlite", "rusqlite", NORMAL),
            ("connectly-orchestrator", "connectly-client", NORMAL),
            ("connectly-orchestrator", "connectly-sink", NORMAL),
            ("connectly-orchestrator", "connectly-csv", NORMAL),
            ("connectly-orchestrator", "connectly-sink-file", DEV),
            ("connectly-server", "connectly-orchestrator", NORMAL),
            ("connectly-server", "axum", NORMAL),
            ("connectly-sync", "connectly-server", NORMAL),
            ("connectly-sync", "connectly-orchestrator", NORMAL),
            ("connectly-sync", "connectly-sink-file", NORMAL),
            ("connectly-sync", "connectly-sink-sqlite", NORMAL),
            ("connectly-sync", "anyhow", NORMAL),
            ("connectly-vendor-fake", "axum", NORMAL),
            ("axum", "tokio", NORMAL),
            ("connectly-e2e", "connectly-vendor-fake", NORMAL),
            ("connectly-e2e", "anyhow", NORMAL),
            ("xtask", "anyhow", NORMAL),
        ];
        edges.extend_from_slice(extra);
        let graph = Graph::from_metadata(&metadata(MEMBERS, THIRD_PARTY, &edges))?;
        check_rules(&graph, RULES)
    }

    #[test]
    fn the_intended_layering_passes() -> Result<()> {
        assert_eq!(workspace(&[])?, Vec::<String>::new());
        Ok(())
    }

    /// Asserts exactly one violation, naming `edge` and the full `chain`.
    fn assert_one(violations: &[String], edge: &str, chain: &str) {
        assert_eq!(violations.len(), 1, "{violations:#?}");
        let v = &violations[0];
        assert!(v.contains(&format!("forbidden dependency {edge}:")), "{v}");
        assert!(v.contains(&format!("(found: {chain})")), "{v}");
    }

    #[test]
    fn a_transitive_runtime_under_the_model_is_caught() -> Result<()> {
        // A third-party crate of the model starts to pull in hyper (and so tokio): the
        // rules must see through the model's third-party dependencies, for the model and
        // for the Sink trait that builds on it.
        let v = workspace(&[("time", "hyper", NORMAL)])?;
        assert_eq!(v.len(), 4, "{v:#?}");
        assert!(v.iter().any(|m| m.contains(
            "forbidden dependency connectly-model -> tokio: connectly-model must not depend directly or \
             transitively on tokio (found: connectly-model -> time -> hyper -> tokio)"
        )));
        assert!(v.iter().any(|m| m.contains(
            "forbidden dependency connectly-sink -> hyper: connectly-sink must not depend directly or \
             transitively on hyper (found: connectly-sink -> connectly-model -> time -> hyper)"
        )));
        Ok(())
    }

    #[test]
    fn our_crates_are_forbidden_unless_allowed() -> Result<()> {
        // The model may use none of ours, and whatever it pulls in reaches its dependents.
        let v = workspace(&[("connectly-model", "connectly-csv", NORMAL)])?;
        assert_eq!(v.len(), 4, "{v:#?}");
        for expected in [
            "connectly-model -> connectly-csv: connectly-model must not depend directly or transitively on \
             connectly-csv (found: connectly-model -> connectly-csv)",
            "connectly-client -> connectly-csv: connectly-client must not depend directly or transitively on \
             connectly-csv (found: connectly-client -> connectly-model -> connectly-csv)",
            "connectly-sink -> connectly-csv: connectly-sink must not depend directly or transitively on \
             connectly-csv (found: connectly-sink -> connectly-model -> connectly-csv)",
            "connectly-sink -> csv: connectly-sink must not depend directly or transitively on \
             csv (found: connectly-sink -> connectly-model -> connectly-csv -> csv)",
        ] {
            assert!(v.iter().any(|m| m.contains(expected)), "{expected}\n{v:#?}");
        }
        // The client may use the model, but not a sink through it.
        let v = workspace(&[("connectly-client", "connectly-sink", NORMAL)])?;
        assert_one(
            &v,
            "connectly-client -> connectly-sink",
            "connectly-client -> connectly-sink",
        );
        // csv is fine for a sink implementation, not for the Sink trait.
        let v = workspace(&[("connectly-sink", "connectly-csv", NORMAL)])?;
        assert_eq!(v.len(), 2, "{v:#?}");
        assert!(v.iter().any(|m| m.contains("connectly-sink -> csv")));
        assert!(v.iter().any(|m| m.contains("connectly-sink -> connectly-csv")));
        Ok(())
    }

    #[test]
    fn prefix_subjects_cover_future_sinks() -> Result<()> {
        let mut members = MEMBERS.to_vec();
        members.push("connectly-sink-s3");
        let edges: &[(&str, &str, &[Option<&str>])] = &[
            ("connectly-sink-s3", "connectly-sink", NORMAL),
            ("connectly-sink-s3", "connectly-orchestrator", NORMAL),
            ("connectly-orchestrator", "connectly-client", NORMAL),
            ("connectly-client", "connectly-model", NORMAL),
            ("connectly-sink", "connectly-model", NORMAL),
        ];
        let graph = Graph::from_metadata(&metadata(&members, THIRD_PARTY, edges))?;
        let v = check_rules(&graph, RULES)?;
        assert_eq!(v.len(), 2, "{v:#?}");
        assert!(
            v.iter()
                .any(|m| m.contains("connectly-sink-s3 -> connectly-orchestrator:"))
        );
        assert!(v.iter().any(|m| m.contains(
            "connectly-sink-s3 -> connectly-client: connectly-sink-s3 must not depend directly or transitively on \
             connectly-client (found: connectly-sink-s3 -> connectly-orchestrator -> connectly-client)"
        )));
        Ok(())
    }

    #[test]
    fn the_server_may_not_pick_concrete_sinks_nor_the_orchestrator_the_server() -> Result<()> {
        assert_one(
            &workspace(&[("connectly-server", "connectly-sink-sqlite", NORMAL)])?,
            "connectly-server -> connectly-sink-sqlite",
            "connectly-server -> connectly-sink-sqlite",
        );
        assert_one(
            &workspace(&[("connectly-orchestrator", "connectly-server", NORMAL)])?,
            "connectly-orchestrator -> connectly-server",
            "connectly-orchestrator -> connectly-server",
        );
        Ok(())
    }

    #[test]
    fn the_orchestrator_may_use_sinks_only_in_dev_dependencies() -> Result<()> {
        // The server, above the orchestrator, inherits the violation and is named too.
        let violations = workspace(&[("connectly-orchestrator", "connectly-sink-sqlite", NORMAL)])?;
        let (orchestrator, server): (Vec<String>, Vec<String>) = violations
            .into_iter()
            .partition(|v| v.starts_with("forbidden dependency connectly-orchestrator"));
        assert_one(
            &orchestrator,
            "connectly-orchestrator -> connectly-sink-sqlite",
            "connectly-orchestrator -> connectly-sink-sqlite",
        );
        assert_one(
            &server,
            "connectly-server -> connectly-sink-sqlite",
            "connectly-server -> connectly-orchestrator -> connectly-sink-sqlite",
        );
        assert_eq!(
            workspace(&[("connectly-orchestrator", "connectly-sink-sqlite", DEV)])?.len(),
            0
        );
        Ok(())
    }

    #[test]
    fn anyhow_is_checked_directly_and_only_for_libraries() -> Result<()> {
        assert_one(
            &workspace(&[("connectly-csv", "anyhow", NORMAL)])?,
            "connectly-csv -> anyhow",
            "connectly-csv -> anyhow",
        );
        // Through a third-party crate it is that crate's business.
        assert_eq!(workspace(&[("csv", "anyhow", NORMAL)])?.len(), 0);
        // The vendor fake has its own rule: none of our crates.
        assert_one(
            &workspace(&[("connectly-vendor-fake", "connectly-model", NORMAL)])?,
            "connectly-vendor-fake -> connectly-model",
            "connectly-vendor-fake -> connectly-model",
        );
        Ok(())
    }

    #[test]
    fn a_rule_for_a_missing_crate_is_an_error() -> Result<()> {
        let members: Vec<&str> = MEMBERS.iter().copied().filter(|m| *m != "connectly-csv").collect();
        let graph = Graph::from_metadata(&metadata(&members, THIRD_PARTY, &[]))?;
        let err = check_rules(&graph, RULES)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("`connectly-csv`: no such workspace member"), "{err}");
        Ok(())
    }

    #[test]
    fn metadata_without_resolve_is_an_error() {
        let mut meta = metadata(&["a"], &[], &[]);
        meta["resolve"] = Value::Null;
        assert!(Graph::from_metadata(&meta).is_err());
    }

    #[test]
    fn workspace_lints_are_recognised() {
        assert!(has_workspace_lints(
            "[package]\nname = \"a\"\n\n[lints]\nworkspace = true\n"
        ));
        assert!(has_workspace_lints(
            "[lints]\n# inherit\nworkspace=true # yes\n[dev-dependencies]\n"
        ));
        assert!(has_workspace_lints("lints.workspace = true\n[package]\nname = \"a\"\n"));
        assert!(!has_workspace_lints("[package]\nname = \"a\"\n"));
        assert!(!has_workspace_lints("[lints]\n# workspace = true\n"));
        assert!(!has_workspace_lints("[lints.rust]\nworkspace = true\n"));
        assert!(!has_workspace_lints("[lints]\n[dependencies]\nworkspace = true\n"));
        assert!(!has_workspace_lints("[lints]\nworkspace = false\n"));
    }
}
