//! README's promises are tests: every row of `docs/promises.md` names the
//! tests or fault checks that prove it, and this test fails when a row names
//! none, or names one that does not exist (renamed or deleted), so the table
//! cannot drift from the suite.
//!
//! A reference is `path/to/file.rs::test_name` (a `fn test_name` in that
//! file) or `faults:case/check` (a `judge check` in
//! `tests/faults/cases/case.sh`), written in backticks.

use std::{fs, path::PathBuf};

fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// What one reference points at, or why it does not.
fn check_reference(root: &std::path::Path, reference: &str) -> Result<(), String> {
    if let Some(fault) = reference.strip_prefix("faults:") {
        let (case, check) = fault
            .split_once('/')
            .ok_or_else(|| format!("`{reference}`: expected faults:case/check"))?;
        let script = root.join("tests/faults/cases").join(format!("{case}.sh"));
        let text = fs::read_to_string(&script)
            .map_err(|e| format!("`{reference}`: cannot read {}: {e}", script.display()))?;
        let judged = text.lines().any(|line| {
            let mut words = line.split_whitespace();
            words.next() == Some("judge") && words.next() == Some(check)
        });
        return if judged {
            Ok(())
        } else {
            Err(format!(
                "`{reference}`: no `judge {check}` in {}",
                script.display()
            ))
        };
    }
    let (file, test) = reference
        .split_once("::")
        .ok_or_else(|| format!("`{reference}`: expected path::test or faults:case/check"))?;
    let text = fs::read_to_string(root.join(file))
        .map_err(|e| format!("`{reference}`: cannot read {file}: {e}"))?;
    let defined = text.lines().any(|line| {
        let line = line.trim_start();
        let line = line.strip_prefix("async ").unwrap_or(line);
        line.strip_prefix("fn ")
            .and_then(|rest| rest.strip_prefix(test))
            .is_some_and(|rest| rest.starts_with('('))
    });
    if defined {
        Ok(())
    } else {
        Err(format!("`{reference}`: no `fn {test}` in {file}"))
    }
}

/// The backticked references in one table cell.
fn references(cell: &str) -> Vec<&str> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .filter(|r| r.contains("::") || r.starts_with("faults:"))
        .collect()
}

#[test]
fn every_promise_names_tests_that_exist() {
    let root = repo_root();
    let table = fs::read_to_string(root.join("docs/promises.md")).expect("docs/promises.md");
    let mut rows = 0;
    let mut problems = Vec::new();
    for line in table.lines().filter(|l| l.starts_with("| ")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        let Some(proof) = cells.last() else { continue };
        if cells.len() < 3 || proof.starts_with("proved by") || line.starts_with("| ---") {
            continue;
        }
        rows += 1;
        let refs = references(proof);
        if refs.is_empty() {
            problems.push(format!("no test named for: {}", cells[1]));
        }
        problems.extend(refs.iter().filter_map(|r| check_reference(&root, r).err()));
    }
    assert!(rows >= 20, "docs/promises.md has only {rows} promise rows");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checker_rejects_missing_tests() {
    let root = repo_root();
    let cases = [
        (
            "services/tests/promises.rs::every_promise_names_tests_that_exist",
            true,
        ),
        ("services/tests/promises.rs::no_such_test", false),
        ("services/tests/promises.rs::every_promise", false),
        ("no/such/file.rs::x", false),
        ("faults:no-such-case/health", false),
    ];
    for (reference, exists) in cases {
        assert_eq!(
            check_reference(&root, reference).is_ok(),
            exists,
            "{reference}"
        );
    }
    assert_eq!(
        references("`a.rs::b`, `faults:c/d` and `plain`"),
        ["a.rs::b", "faults:c/d"]
    );
}
