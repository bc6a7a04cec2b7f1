//! The layout of `runtime/src/` keeps its promise: dependencies between the
//! top-level modules point one way (no cycle), and the three entries (`cli`,
//! `daemon`, `lambda`) are started by `entry` alone, never by each other or
//! by what they use.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every top-level module and the other top-level modules its code names
/// (`crate::NAME`, in `use` lists too), comments left out.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = common::root().join("runtime/src");
    let mut names = BTreeSet::new();
    for e in std::fs::read_dir(&src).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        let name = name.strip_suffix(".rs").unwrap_or(&name).to_owned();
        if name != "main" && name != "lib" {
            names.insert(name);
        }
    }
    let mut graph: BTreeMap<String, BTreeSet<String>> =
        names.iter().map(|n| (n.clone(), BTreeSet::new())).collect();
    for top in &names {
        let mut files = Vec::new();
        collect(&src.join(top), &mut files);
        collect(&src.join(format!("{top}.rs")), &mut files);
        for file in files {
            let code: String = std::fs::read_to_string(&file)
                .unwrap()
                .lines()
                .map(|l| l.split("//").next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join("\n");
            for used in named_modules(&code) {
                if used != *top && names.contains(&used) {
                    graph.get_mut(top).unwrap().insert(used);
                }
            }
        }
    }
    graph
}

fn collect(path: &Path, files: &mut Vec<std::path::PathBuf>) {
    if path.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            collect(&e.unwrap().path(), files);
        }
    } else if path.is_file() && path.extension().is_some_and(|x| x == "rs") {
        files.push(path.to_path_buf());
    }
}

/// The modules `code` names after `crate::`, and inside `use crate::{…}`.
fn named_modules(code: &str) -> BTreeSet<String> {
    let word = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(list) = rest.strip_prefix('{') {
            let list = &list[..list.find('}').unwrap_or(list.len())];
            // The first word of each item: `a::b`, `c` in `{a::b, c}`.
            for item in list.split(',') {
                out.insert(word(item.trim()));
            }
        } else {
            out.insert(word(rest));
        }
    }
    out
}

/// A cycle through `graph`, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == n) {
            let mut c = path[at..].to_vec();
            c.push(n.to_owned());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_owned());
        for m in &graph[n] {
            if let Some(c) = visit(m, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_top_level_modules_depend_on_each_other_one_way() {
    let graph = module_graph();
    assert!(graph.len() > 20, "{graph:?}");
    assert_eq!(cycle(&graph), None, "{graph:#?}");
}

#[test]
fn only_entry_starts_the_entries() {
    let graph = module_graph();
    let users: Vec<(&String, &String)> = graph
        .iter()
        .flat_map(|(from, to)| to.iter().map(move |t| (from, t)))
        .filter(|(from, to)| {
            ["cli", "daemon", "lambda"].contains(&to.as_str()) && from.as_str() != "entry"
        })
        .collect();
    assert_eq!(users, Vec::<(&String, &String)>::new());
    assert_eq!(
        graph["entry"],
        ["cli", "daemon", "lambda"].map(String::from).into()
    );
}

#[test]
fn the_graph_sees_a_cycle_and_every_form_of_use() {
    let code = "use crate::a::X;\nuse crate::{b::Y, c};\nlet _ = crate::d::f();";
    assert_eq!(
        named_modules(code),
        ["a", "b", "c", "d"].map(String::from).into()
    );
    let g: BTreeMap<String, BTreeSet<String>> = [
        ("x".to_owned(), ["y".to_owned()].into()),
        ("y".to_owned(), ["x".to_owned()].into()),
    ]
    .into();
    assert_eq!(cycle(&g), Some(vec!["x".into(), "y".into(), "x".into()]));
}
