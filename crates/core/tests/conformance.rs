//! Runs every `tests/conformance/*.json` vector through the native core.
//! `CONFORMANCE_BLESS=1` fills in the `expect` of cases that have neither `expect` nor
//! `expectError` (new cases) — review the diff before committing.
#![allow(
    clippy::disallowed_methods,
    reason = "a test reads its vector files and the bless switch; the crate stays pure"
)]

use std::path::{Path, PathBuf};

use crm_core::conformance::VectorFile;
use crm_core::json_api::{Answer, evaluate};

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance")
}

#[test]
fn conformance_vectors_pass_on_the_native_core() {
    let dir = vectors_dir();
    let bless = std::env::var_os("CONFORMANCE_BLESS").is_some();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/conformance exists")
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let (mut passed, mut failures) = (0, Vec::new());
    for path in files {
        let text = std::fs::read_to_string(&path).expect("vector file readable");
        let mut file: VectorFile =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let setup = file
            .setup(|name| {
                std::fs::read_to_string(dir.join("fixtures").join(format!("{name}.json")))
                    .map_err(|e| e.to_string())
            })
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut blessed = false;
        for case in &mut file.cases {
            let answer = match evaluate(&setup, &case.op, &case.input) {
                Ok(v) => Answer::Ok(v),
                Err(e) => Answer::Error(serde_json::to_value(&e).expect("errors serialize")),
            };
            if let (true, None, None, Answer::Ok(v)) =
                (bless, &case.expect, &case.expect_error, &answer)
            {
                case.expect = Some(v.clone());
                blessed = true;
            }
            match case.check(&answer) {
                Ok(()) => passed += 1,
                Err(why) => failures.push(format!("{} / {}: {why}", path.display(), case.name)),
            }
        }
        if blessed {
            let out = serde_json::to_string_pretty(&file).expect("vectors serialize");
            std::fs::write(&path, out + "\n").expect("vector file writable");
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(passed >= 30, "only {passed} conformance cases ran");
}
