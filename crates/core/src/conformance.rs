//! The conformance vector format (`tests/conformance/README.md`) and the comparison
//! rule. Pure: callers read the files and evaluate the cases in their runtime (native,
//! component, worker over HTTP, browser), then ask `check` whether the answer matches.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::json_api::{Answer, Setup};

/// One `tests/conformance/*.json` file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VectorFile {
    pub description: String,
    /// A fixture name (`fixtures/<name>.json`) or an inline setup; absent = empty setup.
    #[serde(default)]
    pub setup: Option<SetupRef>,
    pub cases: Vec<Case>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SetupRef {
    Fixture(String),
    Inline(Box<Setup>),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Case {
    pub name: String,
    /// The original defect (docs/design.md §6) this case guards against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defect: Option<u32>,
    pub op: String,
    pub input: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_error: Option<ExpectedError>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExpectedError {
    pub code: String,
    /// Checked when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl VectorFile {
    /// Resolves the setup with `fixture(name)` returning the fixture's JSON text.
    pub fn setup(
        &self,
        fixture: impl FnOnce(&str) -> Result<String, String>,
    ) -> Result<Setup, String> {
        match &self.setup {
            None => Ok(Setup::default()),
            Some(SetupRef::Inline(s)) => Ok((**s).clone()),
            Some(SetupRef::Fixture(name)) => {
                let text = fixture(name)?;
                serde_json::from_str(&text).map_err(|e| format!("fixture `{name}`: {e}"))
            }
        }
    }
}

impl Case {
    /// `Ok(())` when the answer is what the case expects; otherwise a readable diff.
    pub fn check(&self, answer: &Answer) -> Result<(), String> {
        match (answer, &self.expect, &self.expect_error) {
            (Answer::Ok(got), Some(want), None) if got == want => Ok(()),
            (Answer::Error(got), None, Some(want)) => {
                let code = got.get("code").and_then(Value::as_str);
                let field = got.get("field").and_then(Value::as_str);
                let field_ok = want.field.is_none() || want.field.as_deref() == field;
                if code == Some(want.code.as_str()) && field_ok {
                    Ok(())
                } else {
                    Err(format!("expected error {want:?}, got {got}"))
                }
            }
            (_, None, None) | (_, Some(_), Some(_)) => {
                Err("case must have exactly one of `expect` and `expectError`".to_owned())
            }
            (got, want, want_err) => Err(format!(
                "expected {}, got {}",
                want.as_ref()
                    .map(Value::to_string)
                    .unwrap_or_else(|| format!("error {want_err:?}")),
                serde_json::to_string(got).expect("answers serialize")
            )),
        }
    }
}
