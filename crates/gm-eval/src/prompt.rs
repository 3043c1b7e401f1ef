//! `.prompt.yml` files: the format of GitHub Models prompts and evaluation suites.
//!
//! Parsed as gh-models does, with the spellings other tools wrote accepted too: `modelParameters` with
//! `maxTokens` or `max_tokens`, `topP` or `top_p`; `jsonSchema` as a JSON string (an object is accepted with a
//! warning); roles case-insensitive (`developer` accepted). Templating replaces `{{key}}` for every key given;
//! unknown placeholders stay as written.

use std::path::Path;

use gm_core::{ChatMessage, ChatRequest, JsonSchemaFormat, ResponseFormat, Role};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Why a prompt file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PromptError {
    /// The file could not be read.
    #[error("could not read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The YAML is malformed or has a field of the wrong type.
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// 1-based line, 0 when unknown.
        line: usize,
        /// 1-based column, 0 when unknown.
        column: usize,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The YAML is well formed but a value is not allowed.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The file is larger, or nests deeper, than a prompt file may; refused before it is parsed.
    #[error("{path}: {what}")]
    TooLarge {
        /// The file.
        path: String,
        /// Which limit, and by how much.
        what: String,
    },
}

/// The largest prompt file read, in bytes. Parsing holds several times the text in memory (a 10 MB file of
/// short rows took 645 MB), so a larger file is refused before it is read whole.
pub const MAX_PROMPT_FILE_BYTES: u64 = 4 << 20;

/// The deepest nesting of lists and mappings a prompt file may have (a prompt file needs about six). The YAML
/// parser takes super-linear time on deep nesting, so deeper text is refused before it sees it.
pub const MAX_PROMPT_FILE_DEPTH: usize = 64;

/// What a look at the text before parsing finds: how deep it nests, and what its first content is.
struct Shape {
    depth: usize,
    /// The first character of the first line with content, outside comments and a document marker.
    first: Option<char>,
}

/// Measures nesting without parsing: block nesting by indentation (each deeper indent of a line opens a
/// level) plus flow nesting (`[` and `{` outside quotes and comments). Brackets inside plain text count
/// too, which can only overstate the depth of text that opens many brackets and never closes them.
fn shape(text: &str) -> Shape {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    let mut depth = 0usize;
    let mut first = None;
    for line in text.lines() {
        let body = line.trim_start_matches([' ', '\t']);
        if body.is_empty() || body.starts_with('#') || (flow == 0 && (body == "---" || body == "...")) {
            continue;
        }
        if first.is_none() {
            first = body.chars().next();
        }
        if flow == 0 {
            let indent = line.len() - body.len();
            while indents.last().is_some_and(|&i| i >= indent) {
                indents.pop();
            }
            indents.push(indent);
            // A list item's dash opens a level of its own, as does each dash on the same line (`- - x`).
            let dashes = body.split_inclusive(' ').take_while(|w| w.trim() == "-").count();
            depth = depth.max(indents.len() + dashes);
        }
        let mut quote: Option<char> = None;
        let mut prev = ' ';
        for c in body.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '#') if prev == ' ' || prev == '\t' => break,
                (None, '\'' | '"') if matches!(prev, ' ' | '[' | '{' | ',' | ':') => quote = Some(c),
                (None, '[' | '{') => {
                    flow += 1;
                    depth = depth.max(indents.len() + flow);
                }
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                _ => {}
            }
            prev = c;
        }
    }
    Shape { depth, first }
}

/// `modelParameters`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelParameters {
    /// `maxTokens` (or `max_tokens`).
    #[serde(default, rename = "maxTokens", alias = "max_tokens")]
    pub max_tokens: Option<u32>,
    /// `temperature`.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// `topP` (or `top_p`).
    #[serde(default, rename = "topP", alias = "top_p")]
    pub top_p: Option<f64>,
}

/// `modelParameters` as a file may write it: gh-models reads three keys and ignores the rest, so other keys
/// are kept aside for a warning rather than refused.
#[derive(Debug, Deserialize)]
struct RawModelParameters {
    #[serde(default, rename = "maxTokens", alias = "max_tokens")]
    max_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default, rename = "topP", alias = "top_p")]
    top_p: Option<f64>,
    #[serde(flatten)]
    other: std::collections::BTreeMap<String, serde_yaml_ng::Value>,
}

/// One message template.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PromptMessage {
    /// `system`, `user`, `assistant` (or `developer`), any case.
    pub role: String,
    /// The text, with `{{var}}` placeholders.
    pub content: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPromptFile {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    model_parameters: Option<RawModelParameters>,
    #[serde(default)]
    response_format: Option<String>,
    #[serde(default)]
    json_schema: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    messages: Vec<PromptMessage>,
    #[serde(default)]
    test_data: Vec<Map<String, Value>>,
    #[serde(default)]
    evaluators: Vec<Value>,
}

/// A loaded prompt file.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptFile {
    /// `name`.
    pub name: String,
    /// `description`.
    pub description: String,
    /// `model`, if the file names one.
    pub model: Option<String>,
    /// `modelParameters`.
    pub model_parameters: ModelParameters,
    /// `responseFormat` with `jsonSchema` resolved.
    pub response_format: Option<ResponseFormat>,
    /// `messages`.
    pub messages: Vec<PromptMessage>,
    /// `testData` rows.
    pub test_data: Vec<Map<String, Value>>,
    /// `evaluators`, as written (interpreted by the evaluation runner).
    pub evaluators: Vec<Value>,
    /// Things accepted but worth a warning (an object `jsonSchema`, …).
    pub warnings: Vec<String>,
}

/// Formats a template value as gh-models does, with Go's `%v` on the value its YAML decoder gives: strings as
/// they are, integers in decimal, floats in Go's shortest `%g` form (`1`, `2.5`, `1e+06`, `1e-05`), `true`,
/// `<nil>`, lists as `[a b]` and maps as `map[k:v]` with their keys sorted.
///
/// ```
/// use gm_eval::prompt::format_value;
/// use serde_json::json;
/// assert_eq!(format_value(&json!(1.0)), "1");
/// assert_eq!(format_value(&json!(1234567.0)), "1.234567e+06");
/// assert_eq!(format_value(&json!(1234567)), "1234567");
/// assert_eq!(format_value(&json!(["a", 2, null])), "[a 2 <nil>]");
/// assert_eq!(format_value(&json!({"b": [1.5], "a": "x"})), "map[a:x b:[1.5]]");
/// ```
pub fn format_value(v: &Value) -> String {
    let mut out = String::new();
    write_go_value(&mut out, v);
    out
}

fn write_go_value(out: &mut String, v: &Value) {
    match v {
        Value::String(s) => out.push_str(s),
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (None, Some(u), _) => out.push_str(&u.to_string()),
            (None, None, Some(f)) => out.push_str(&go_float(f)),
            _ => out.push_str(&n.to_string()),
        },
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_go_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push_str("map[");
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write_go_value(out, &map[k]);
            }
            out.push(']');
        }
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)`: the shortest digits that read back as `f`, in exponent form
/// when the decimal exponent is below -4 or at least 6.
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    // Rust's `{:e}` writes the same shortest digits, as `d.ddde±x`.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if f != 0.0 && !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

/// Where the `index`-th item of the top-level list `section` starts in a file's `text`, as a 1-based
/// (line, column): the line of its `-`, and the column of what follows it. `None` when the file does not
/// write the section as a block list (a flow list such as `[a, b]`, say).
///
/// ```
/// use gm_eval::prompt::locate_item;
/// let text = "name: t\nevaluators:\n  - name: a\n    string: {contains: x}\n  - name: b\n";
/// assert_eq!(locate_item(text, "evaluators", 1), Some((5, 5)));
/// assert_eq!(locate_item(text, "evaluators", 2), None);
/// ```
pub fn locate_item(text: &str, section: &str, index: usize) -> Option<(usize, usize)> {
    let mut lines = text.lines().enumerate();
    lines.find(|(_, l)| l.strip_prefix(section).is_some_and(|rest| rest.trim_start().starts_with(':')))?;
    let mut item_indent = None;
    let mut seen = 0;
    for (n, line) in lines {
        let content = line.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let indent = line.len() - content.len();
        // The next top-level key ends the section (a list may also sit at column 0 under its key).
        if indent == 0 && !content.starts_with('-') {
            return None;
        }
        if !content.starts_with('-') || item_indent.is_some_and(|i| i != indent) {
            continue;
        }
        item_indent.get_or_insert(indent);
        if seen == index {
            let after = content[1..].len() - content[1..].trim_start().len();
            return Some((n + 1, indent + 2 + after));
        }
        seen += 1;
    }
    None
}

/// Where the top-level key `key` is written in `text`, as a 1-based (line, column).
fn locate_key(text: &str, key: &str) -> Option<(usize, usize)> {
    text.lines()
        .position(|l| l.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with(':')))
        .map(|n| (n + 1, 1))
}

/// Replaces `{{key}}` for every key in `vars`; other placeholders stay as written.
pub fn template(text: &str, vars: &Map<String, Value>) -> String {
    if !text.contains("{{") {
        return text.to_string();
    }
    let mut out = text.to_string();
    for (k, v) in vars {
        let needle = format!("{{{{{k}}}}}");
        if out.contains(&needle) {
            out = out.replace(&needle, &format_value(v));
        }
    }
    out
}

/// How deep `text` nests, measured without parsing it (see [`MAX_PROMPT_FILE_DEPTH`]).
pub(crate) fn nesting_depth(text: &str) -> usize {
    shape(text).depth
}

fn too_large(origin: &str, depth: Option<usize>) -> PromptError {
    let what = match depth {
        None => format!(
            "the file is larger than {} MiB, the most a prompt file may be; split its test data over several files",
            MAX_PROMPT_FILE_BYTES >> 20
        ),
        Some(d) => format!(
            "the file nests {d} levels deep, more than the {MAX_PROMPT_FILE_DEPTH} a prompt file may; flatten its data"
        ),
    };
    PromptError::TooLarge { path: origin.to_string(), what }
}

impl PromptFile {
    /// Reads and parses a file.
    ///
    /// A file over [`MAX_PROMPT_FILE_BYTES`] is refused without being read whole.
    pub fn load(path: &Path) -> Result<PromptFile, PromptError> {
        use std::io::Read;
        let origin = path.display().to_string();
        let read_err = |source| PromptError::Read { path: origin.clone(), source };
        let file = std::fs::File::open(path).map_err(read_err)?;
        let mut bytes = Vec::new();
        file.take(MAX_PROMPT_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(read_err)?;
        if bytes.len() as u64 > MAX_PROMPT_FILE_BYTES {
            return Err(too_large(&origin, None));
        }
        let text = String::from_utf8(bytes)
            .map_err(|e| read_err(std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error())))?;
        Self::parse(&text, &origin)
    }

    /// Parses the text of a file; `origin` names it in errors.
    ///
    /// Text over [`MAX_PROMPT_FILE_BYTES`], or nesting deeper than [`MAX_PROMPT_FILE_DEPTH`], is refused
    /// before the YAML parser sees it; so are an empty file and a file that is not a mapping of keys.
    pub fn parse(text: &str, origin: &str) -> Result<PromptFile, PromptError> {
        if text.len() as u64 > MAX_PROMPT_FILE_BYTES {
            return Err(too_large(origin, None));
        }
        let shape = shape(text);
        if shape.depth > MAX_PROMPT_FILE_DEPTH {
            return Err(too_large(origin, Some(shape.depth)));
        }
        let keys = "a prompt file is a mapping of keys (name, model, messages, testData, evaluators); see the \
                    .prompt.yml format in docs";
        match shape.first {
            None => {
                return Err(PromptError::Invalid {
                    path: origin.to_string(),
                    message: format!("the file is empty; {keys}"),
                })
            }
            Some('-' | '[') => {
                return Err(PromptError::Invalid {
                    path: origin.to_string(),
                    message: format!("the file is a list, not a mapping; {keys}"),
                })
            }
            _ => {}
        }
        let raw: RawPromptFile = serde_yaml_ng::from_str(text).map_err(|e| {
            let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
            PromptError::Syntax {
                path: origin.to_string(),
                line,
                column,
                message: format!("{e}; see the .prompt.yml format in docs")
                    .replace("struct RawPromptFile", "a mapping of keys (name, model, messages, testData, evaluators)"),
            }
        })?;
        // A semantic error names the place too, where the key or list item can be found in the text.
        let at = |place: Option<(usize, usize)>| match place {
            Some((line, column)) => format!("{origin}:{line}:{column}"),
            None => origin.to_string(),
        };
        let invalid_at =
            |place: Option<(usize, usize)>, message: String| PromptError::Invalid { path: at(place), message };
        let invalid = |message: String| invalid_at(locate_key(text, "jsonSchema"), message);
        let mut warnings = Vec::new();
        let schema = match raw.json_schema {
            None => None,
            Some(serde_yaml_ng::Value::String(s)) => Some(
                serde_json::from_str::<Value>(&s).map_err(|e| invalid(format!("jsonSchema is not valid JSON: {e}")))?,
            ),
            Some(other) => {
                warnings.push(
                    "jsonSchema should be a JSON string (gh-models rejects an object); accepted as written".into(),
                );
                Some(serde_json::to_value(other).map_err(|e| invalid(format!("jsonSchema could not be read: {e}")))?)
            }
        };
        let response_format = match raw.response_format.as_deref() {
            None => None,
            Some("text") => Some(ResponseFormat::Text),
            Some("json_object") => Some(ResponseFormat::JsonObject),
            Some("json_schema") => {
                let schema = schema.ok_or_else(|| {
                    invalid_at(
                        locate_key(text, "responseFormat"),
                        "responseFormat json_schema needs a jsonSchema: add `jsonSchema: '{\"name\": ..., \"schema\": {...}}'`"
                            .into(),
                    )
                })?;
                let name = schema.get("name").and_then(Value::as_str).map(str::to_string);
                let inner = schema.get("schema").cloned();
                let (Some(name), Some(inner)) = (name, inner) else {
                    return Err(invalid("jsonSchema must have \"name\" and \"schema\" keys".into()));
                };
                let strict = schema.get("strict").and_then(Value::as_bool);
                let description = schema.get("description").and_then(Value::as_str).map(str::to_string);
                Some(ResponseFormat::JsonSchema {
                    json_schema: JsonSchemaFormat {
                        name,
                        description,
                        schema: Some(inner),
                        strict,
                        extra: Default::default(),
                    },
                })
            }
            Some(other) => {
                return Err(invalid_at(
                    locate_key(text, "responseFormat"),
                    format!("responseFormat `{other}` is not supported; use text, json_object or json_schema"),
                ))
            }
        };
        let model_parameters = match raw.model_parameters {
            None => ModelParameters::default(),
            Some(p) => {
                for key in p.other.keys() {
                    warnings.push(format!(
                        "modelParameters.{key} is not used (gh-models reads maxTokens, temperature and topP); ignored"
                    ));
                }
                ModelParameters { max_tokens: p.max_tokens, temperature: p.temperature, top_p: p.top_p }
            }
        };
        for (i, m) in raw.messages.iter().enumerate() {
            if matches!(Role::from_name(&m.role), Role::Other(_) | Role::Tool) {
                return Err(invalid_at(
                    locate_item(text, "messages", i),
                    format!("messages[{i}] has role `{}`; use system, user or assistant", m.role),
                ));
            }
        }
        Ok(PromptFile {
            name: raw.name.unwrap_or_default(),
            description: raw.description.unwrap_or_default(),
            model: raw.model,
            model_parameters,
            response_format,
            messages: raw.messages,
            test_data: raw.test_data,
            evaluators: raw.evaluators,
            warnings,
        })
    }

    /// The messages with `vars` filled in.
    pub fn render_messages(&self, vars: &Map<String, Value>) -> Vec<ChatMessage> {
        self.messages.iter().map(|m| ChatMessage::new(Role::from_name(&m.role), template(&m.content, vars))).collect()
    }

    /// A chat request for `model` with the messages rendered and the file's parameters and format.
    pub fn to_request(&self, model: &str, vars: &Map<String, Value>) -> ChatRequest {
        let mut req = ChatRequest::new(model, self.render_messages(vars));
        req.max_tokens = self.model_parameters.max_tokens;
        req.temperature = self.model_parameters.temperature;
        req.top_p = self.model_parameters.top_p;
        req.response_format = self.response_format.clone();
        req
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_spellings_and_templating() {
        let f = PromptFile::parse(
            "name: t\nmodel: openai/gpt-4o\nmodelParameters:\n  max_tokens: 50\n  top_p: 0.5\nmessages:\n  - role: System\n    content: sys\n  - role: user\n    content: 'hi {{name}} {{n}} {{missing}}'\n",
            "t.prompt.yml",
        )
        .unwrap();
        assert_eq!(f.model_parameters, ModelParameters { max_tokens: Some(50), temperature: None, top_p: Some(0.5) });
        let vars = json!({"name": "Ada", "n": 3}).as_object().unwrap().clone();
        let req = f.to_request("openai/gpt-4o", &vars);
        assert_eq!(req.messages[1].text(), "hi Ada 3 {{missing}}");
        assert_eq!(req.messages[0].role, Role::System);
    }

    #[test]
    fn model_parameters_gh_models_does_not_read_are_ignored_with_a_warning() {
        let f = PromptFile::parse(
            "name: t\nmodelParameters:\n  maxTokens: 9\n  frequencyPenalty: 0.5\nmessages:\n  - role: user\n    content: hi\n",
            "t.prompt.yml",
        )
        .unwrap();
        assert_eq!(f.model_parameters.max_tokens, Some(9));
        assert_eq!(f.warnings.len(), 1);
        assert!(f.warnings[0].contains("modelParameters.frequencyPenalty"), "{:?}", f.warnings);
        // A known key of the wrong type is still an error that names the place.
        let e = PromptFile::parse("modelParameters:\n  maxTokens: lots\n", "t.prompt.yml").unwrap_err();
        assert!(e.to_string().starts_with("t.prompt.yml:2:14: modelParameters.maxTokens"), "{e}");
    }

    #[test]
    fn errors_name_the_place() {
        let e = PromptFile::parse("name: t\nmessages:\n  - role: user\n    content: [unclosed\n", "bad.prompt.yml")
            .unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("bad.prompt.yml:"), "{s}");
        let e = PromptFile::parse("responseFormat: xml\n", "f.yml").unwrap_err();
        assert!(e.to_string().contains("use text, json_object or json_schema"));
        let e =
            PromptFile::parse("responseFormat: json_schema\njsonSchema: '{\"name\": \"x\"}'\n", "f.yml").unwrap_err();
        assert!(e.to_string().contains("\"name\" and \"schema\""));
    }
}
