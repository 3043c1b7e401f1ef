//! From the raw `evaluators` entries of a prompt file to [`EvaluatorSpec`]s.

use std::sync::{Arc, OnceLock};

use regex::Regex;
use serde_json::{Map, Value};

use super::{
    Builtin, EvaluatorError, EvaluatorKind, EvaluatorSpec, JudgeChoice, LlmJudge, MetricCheck, ReferenceSource,
    RegexCheck, SchemaCheck, StringCheck,
};
use crate::{Metric, MetricConfig};

type Parsed<T> = Result<T, String>;

const KINDS: &str = "`string`, `llm` or `uses` (or the extensions `regex`, `jsonSchema`, \
or a metric of `gm score --list` with a threshold, e.g. `rougeL: {min: 0.4}`)";

pub(super) fn parse(index: usize, raw: &Value) -> Result<EvaluatorSpec, EvaluatorError> {
    let position = format!("evaluators[{index}]");
    let invalid = |evaluator: String, message: String| EvaluatorError::Invalid { evaluator, message };
    let Value::Object(map) = raw else {
        return Err(invalid(position, format!("must be a mapping with a `name` and one of {KINDS}")));
    };
    let name = match map.get("name") {
        None | Some(Value::Null) => String::new(),
        Some(v) => scalar(v).ok_or_else(|| invalid(position.clone(), "`name` must be text".into()))?,
    };
    let label = if name.is_empty() { position } else { format!("`{name}` ({position})") };
    let checks: Vec<(&String, &Value)> =
        map.iter().filter(|(k, _)| k.as_str() != "name" && k.as_str() != "description").collect();
    let (key, value) = match checks.as_slice() {
        [] => return Err(invalid(label, format!("has nothing to check; add one of {KINDS}"))),
        [one] => *one,
        many => {
            let keys: Vec<&str> = many.iter().map(|(k, _)| k.as_str()).collect();
            return Err(invalid(
                label,
                format!("has several checks ({}); give each check its own evaluator", keys.join(", ")),
            ));
        }
    };
    let kind = match key.as_str() {
        "string" => parse_string(value),
        "llm" => parse_llm(value),
        "uses" => parse_uses(value),
        "regex" => parse_regex(value),
        "jsonSchema" => parse_schema(value),
        other => match Metric::from_name(other) {
            Ok(metric) => parse_metric(metric, value),
            Err(_) => Err(format!("unknown key `{other}`; use {KINDS}")),
        },
    }
    .map_err(|message| invalid(label, message))?;
    Ok(EvaluatorSpec { name, kind })
}

/// Text from a YAML scalar, the way Go's YAML decoder fills a string field.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn object<'v>(v: &'v Value, what: &str, example: &str) -> Parsed<&'v Map<String, Value>> {
    v.as_object().ok_or_else(|| format!("`{what}` must be a mapping, e.g. `{what}: {example}`"))
}

fn check_keys(map: &Map<String, Value>, what: &str, allowed: &[&str]) -> Parsed<()> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!("unknown key `{k}` in `{what}`; use {}", allowed.join(", "))),
        None => Ok(()),
    }
}

fn text(map: &Map<String, Value>, what: &str, key: &str) -> Parsed<Option<String>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => scalar(v).map(Some).ok_or_else(|| format!("`{what}.{key}` must be text")),
    }
}

fn flag(map: &Map<String, Value>, what: &str, key: &str) -> Parsed<bool> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(format!("`{what}.{key}` must be true or false")),
    }
}

fn parse_string(v: &Value) -> Parsed<EvaluatorKind> {
    const KEYS: [&str; 4] = ["equals", "contains", "startsWith", "endsWith"];
    let map = object(v, "string", "{contains: \"Paris\"}")?;
    check_keys(map, "string", &KEYS)?;
    // gh-models uses only the first non-empty value, in this order.
    for key in KEYS {
        if let Some(value) = text(map, "string", key)?.filter(|s| !s.is_empty()) {
            return Ok(EvaluatorKind::String(match key {
                "equals" => StringCheck::Equals(value),
                "contains" => StringCheck::Contains(value),
                "startsWith" => StringCheck::StartsWith(value),
                _ => StringCheck::EndsWith(value),
            }));
        }
    }
    Err("`string` needs a non-empty `equals`, `contains`, `startsWith` or `endsWith`".into())
}

fn parse_llm(v: &Value) -> Parsed<EvaluatorKind> {
    let map = object(v, "llm", "{modelId: openai/gpt-4o, prompt: \"...{{completion}}...\", choices: [...]}")?;
    check_keys(map, "llm", &["modelId", "prompt", "systemPrompt", "choices"])?;
    let model_id = text(map, "llm", "modelId")?
        .filter(|s| !s.trim().is_empty())
        .ok_or("`llm` needs a `modelId`, the judge model, e.g. `modelId: openai/gpt-4o`")?;
    let prompt = text(map, "llm", "prompt")?
        .filter(|s| !s.trim().is_empty())
        .ok_or("`llm` needs a `prompt` for the judge, with `{{completion}}` where the response goes")?;
    let system_prompt = text(map, "llm", "systemPrompt")?.filter(|s| !s.is_empty());
    let how = "`llm.choices` must be a non-empty list of `{choice: <text>, score: <number>}`";
    let items = match map.get("choices") {
        Some(Value::Array(items)) if !items.is_empty() => items,
        _ => return Err(how.into()),
    };
    let choices = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let choice = item.get("choice").and_then(scalar).filter(|c| !c.is_empty());
            let score = item.get("score").and_then(Value::as_f64);
            match (choice, score) {
                (Some(choice), Some(score)) if score.is_finite() => Ok(JudgeChoice { choice, score }),
                _ => Err(format!("`llm.choices[{i}]` needs a non-empty `choice` and a numeric `score`; {how}")),
            }
        })
        .collect::<Parsed<Vec<_>>>()?;
    Ok(EvaluatorKind::Llm(LlmJudge { model_id, prompt, system_prompt, choices }))
}

fn parse_uses(v: &Value) -> Parsed<EvaluatorKind> {
    let uses =
        scalar(v).filter(|s| !s.is_empty()).ok_or("`uses` must name an evaluator, e.g. `uses: github/similarity`")?;
    Ok(match Builtin::from_uses(&uses) {
        Some(b) => EvaluatorKind::Builtin(b),
        // Not an error: gh-models scores an unknown plugin as a failed result.
        None => EvaluatorKind::UnknownPlugin { uses },
    })
}

fn placeholder() -> &'static Regex {
    static PLACEHOLDER: OnceLock<Regex> = OnceLock::new();
    PLACEHOLDER.get_or_init(|| Regex::new(r"\{\{[^{}]*\}\}").unwrap_or_else(|_| unreachable!("constant pattern")))
}

fn parse_regex(v: &Value) -> Parsed<EvaluatorKind> {
    let mut check = match v {
        Value::String(pattern) => RegexCheck::new(pattern.clone(), false, false, false, false),
        Value::Object(map) => {
            check_keys(map, "regex", &["pattern", "ignoreCase", "multiline", "dotAll", "negate"])?;
            RegexCheck::new(
                text(map, "regex", "pattern")?
                    .filter(|p| !p.is_empty())
                    .ok_or("`regex` needs a `pattern`, e.g. `regex: {pattern: \"^\\\\d+$\"}`")?,
                flag(map, "regex", "ignoreCase")?,
                flag(map, "regex", "multiline")?,
                flag(map, "regex", "dotAll")?,
                flag(map, "regex", "negate")?,
            )
        }
        _ => return Err("`regex` must be a pattern or a mapping with `pattern`".into()),
    };
    // Row values are inserted escaped, so any placeholder stands for a literal: check the rest now.
    let probe = placeholder().replace_all(&check.pattern, "x");
    let compiled = check
        .compile(&probe)
        .map_err(|e| format!("the pattern does not compile: {e}; fix the pattern (Rust regex syntax)"))?;
    // Without placeholders the probe is the pattern itself: keep it for every case.
    if probe == check.pattern.as_str() {
        check.compiled = Some(compiled);
    }
    Ok(EvaluatorKind::Regex(check))
}

fn parse_schema(v: &Value) -> Parsed<EvaluatorKind> {
    let schema = match v {
        Value::String(s) => serde_json::from_str::<Value>(s)
            .map_err(|e| format!("`jsonSchema` is not valid JSON: {e}; give a JSON schema object or JSON string"))?,
        Value::Object(_) | Value::Bool(_) => v.clone(),
        _ => return Err("`jsonSchema` must be a JSON schema, as an object or a JSON string".into()),
    };
    // Accept the `{name, schema}` wrapper of the file's own `jsonSchema` (the response format).
    let schema = match &schema {
        Value::Object(m)
            if m.get("schema").is_some_and(Value::is_object)
                && m.contains_key("name")
                && m.keys().all(|k| ["name", "schema", "strict", "description"].contains(&k.as_str())) =>
        {
            m["schema"].clone()
        }
        _ => schema,
    };
    let validator = jsonschema::validator_for(&schema)
        .map_err(|e| format!("`jsonSchema` is not a valid JSON schema: {e}; fix the schema"))?;
    Ok(EvaluatorKind::JsonSchema(SchemaCheck { schema, validator: Arc::new(validator) }))
}

fn parse_metric(metric: Metric, v: &Value) -> Parsed<EvaluatorKind> {
    let example = format!("`{metric}: {{min: 0.4}}`");
    let empty = Map::new();
    let (min, map) = match v {
        Value::Number(n) => (n.as_f64(), &empty),
        Value::Null => (None, &empty),
        Value::Object(map) => {
            check_keys(map, metric.name(), &["min", "reference", "referenceKey", "stemmer"])?;
            let min = match map.get("min") {
                None | Some(Value::Null) => None,
                Some(m) => Some(m.as_f64().ok_or_else(|| format!("`{metric}.min` must be a number in [0, 1]"))?),
            };
            (min, map)
        }
        _ => return Err(format!("`{metric}` must be a threshold or a mapping, e.g. {example}")),
    };
    let min = match min {
        Some(m) if (0.0..=1.0).contains(&m) => m,
        Some(m) => return Err(format!("`{metric}.min` is {m}; give a threshold in [0, 1]")),
        None if metric.is_graded() => {
            return Err(format!("`{metric}` needs a passing threshold `min` in [0, 1], e.g. {example}"))
        }
        None => 1.0,
    };
    let reference = text(map, metric.name(), "reference")?;
    let key = text(map, metric.name(), "referenceKey")?;
    let reference = match (reference, key) {
        (Some(_), Some(_)) => {
            return Err(format!("`{metric}` has both `reference` and `referenceKey`; keep one"));
        }
        _ if metric == Metric::JsonValid => ReferenceSource::None,
        (Some(t), None) => ReferenceSource::Template(t),
        (None, Some(k)) => ReferenceSource::Key(k),
        (None, None) => ReferenceSource::Key("expected".into()),
    };
    let rouge_stemmer = flag(map, metric.name(), "stemmer")?;
    if rouge_stemmer && !metric.is_rouge() {
        return Err(format!("`stemmer` applies to ROUGE metrics only; remove it from `{metric}`"));
    }
    let config = MetricConfig { rouge_stemmer, ..MetricConfig::default() };
    Ok(EvaluatorKind::Metric(MetricCheck { metric, min, reference, config }))
}
