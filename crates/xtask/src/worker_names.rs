//! The worker's function names, moved out of the uploaded wasm into a side file.
//!
//! rustc and wasm-bindgen leave a `name` custom section in the module: about 12 % of
//! the gzipped bundle, read by nothing at run time — only by whoever reads a stack
//! trace. The upload goes without it (issue 29: the bundle's size); the names are
//! kept beside the build (`index_bg.names`, one `index name` per line), so a
//! production trace's `wasm-function[N]` is looked up there.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use wasmparser::{KnownCustom, Name, Parser};

/// Rewrites `wasm` without its `name` section; writes the function names to
/// `<wasm stem>.names` beside it. Answers the bytes removed.
pub fn strip(wasm: &Path) -> Result<usize> {
    let bytes = std::fs::read(wasm).with_context(|| format!("read {}", wasm.display()))?;
    let mut module = wasm_encoder::Module::new();
    let mut names = String::new();
    for payload in Parser::new(0).parse_all(&bytes) {
        let payload = payload.with_context(|| format!("parse {}", wasm.display()))?;
        if let wasmparser::Payload::CustomSection(c) = &payload
            && let KnownCustom::Name(reader) = c.as_known()
        {
            for sub in reader {
                if let Name::Function(map) = sub? {
                    for naming in map {
                        let naming = naming?;
                        writeln!(names, "{} {}", naming.index, naming.name)?;
                    }
                }
            }
            continue;
        }
        if let Some((id, range)) = payload.as_section() {
            let (start, end) = (usize::try_from(range.start)?, usize::try_from(range.end)?);
            module.section(&wasm_encoder::RawSection {
                id,
                data: &bytes[start..end],
            });
        }
    }
    let stripped = module.finish();
    let removed = bytes.len() - stripped.len();
    std::fs::write(wasm.with_extension("names"), names)?;
    std::fs::write(wasm, stripped).with_context(|| format!("write {}", wasm.display()))?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_section_moves_to_the_side_file_and_the_code_stays() {
        // A module with one function named `answer`.
        let mut module = wasm_encoder::Module::new();
        let mut types = wasm_encoder::TypeSection::new();
        types.ty().function([], [wasm_encoder::ValType::I32]);
        module.section(&types);
        let mut functions = wasm_encoder::FunctionSection::new();
        functions.function(0);
        module.section(&functions);
        let mut code = wasm_encoder::CodeSection::new();
        let mut body = wasm_encoder::Function::new([]);
        body.instructions().i32_const(42).end();
        code.function(&body);
        module.section(&code);
        let mut names = wasm_encoder::NameSection::new();
        let mut functions = wasm_encoder::NameMap::new();
        functions.append(0, "answer");
        names.functions(&functions);
        module.section(&names);
        let dir = tempfile_dir();
        let wasm = dir.join("m.wasm");
        std::fs::write(&wasm, module.finish()).expect("written");

        let removed = strip(&wasm).expect("stripped");
        assert!(removed > 0);
        assert_eq!(
            std::fs::read_to_string(dir.join("m.names")).expect("names"),
            "0 answer\n"
        );
        let stripped = std::fs::read(&wasm).expect("read");
        wasmparser::validate(&stripped).expect("still a valid module");
        let customs = Parser::new(0)
            .parse_all(&stripped)
            .filter(|p| matches!(p, Ok(wasmparser::Payload::CustomSection(_))))
            .count();
        assert_eq!(customs, 0);
        std::fs::remove_dir_all(&dir).expect("cleaned");
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-names-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }
}
