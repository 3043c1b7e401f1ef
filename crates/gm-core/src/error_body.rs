//! Error bodies in every envelope the providers use.

use serde_json::Value;

/// A parsed API error body.
///
/// Understands the GitHub/Azure envelope `{"error":{"code","message","details"}}`, the OpenAI envelope
/// `{"error":{"message","type","param","code"}}`, the validation form `{"error":["…","…"]}`,
/// a bare `{"error":"…"}` (Ollama) and a top-level `{"message":…}`.
///
/// ```
/// use gm_core::ErrorBody;
/// let b = ErrorBody::parse(br#"{"error":{"code":"unknown_model","message":"Unknown model: x","details":null}}"#).unwrap();
/// assert_eq!(b.code.as_deref(), Some("unknown_model"));
/// assert_eq!(b.message, "Unknown model: x");
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ErrorBody {
    /// The machine-readable code (`unknown_model`, `RateLimitReached`, `unsupported_value`, …).
    pub code: Option<String>,
    /// The human message; for the array form, the entries joined with `; `.
    pub message: String,
    /// GitHub/Azure `details`, as text.
    pub details: Option<String>,
    /// OpenAI `type` (`invalid_request_error`, `server_error`).
    pub kind: Option<String>,
    /// OpenAI `param`, the offending field.
    pub param: Option<String>,
    /// The entries of the array-of-strings form, in order.
    pub messages: Vec<String>,
}

fn text_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

impl ErrorBody {
    /// Parses a body; `None` when it is not JSON or has no recognisable error in it.
    pub fn parse(body: &[u8]) -> Option<ErrorBody> {
        let v: Value = serde_json::from_slice(body).ok()?;
        Self::from_value(&v)
    }

    /// Reads an error out of an already parsed JSON document.
    pub fn from_value(v: &Value) -> Option<ErrorBody> {
        let obj = v.as_object()?;
        match obj.get("error") {
            Some(Value::Object(e)) => Some(ErrorBody {
                code: text_of(e.get("code")),
                message: text_of(e.get("message")).unwrap_or_default(),
                details: text_of(e.get("details")),
                kind: text_of(e.get("type")),
                param: text_of(e.get("param")),
                messages: Vec::new(),
            }),
            Some(Value::Array(items)) => {
                let messages: Vec<String> = items
                    .iter()
                    .map(|i| match i {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                Some(ErrorBody { message: messages.join("; "), messages, ..Default::default() })
            }
            Some(Value::String(s)) => Some(ErrorBody { message: s.clone(), ..Default::default() }),
            _ => {
                let message = text_of(obj.get("message"))?;
                Some(ErrorBody { code: text_of(obj.get("code")), message, ..Default::default() })
            }
        }
    }

    /// The first "Please wait N seconds" in the message or details, as gh-models' 429 bodies say it.
    pub fn please_wait_seconds(&self) -> Option<u64> {
        [Some(&self.message), self.details.as_ref()].into_iter().flatten().find_map(|s| please_wait(s))
    }
}

fn please_wait(s: &str) -> Option<u64> {
    let lower = s.to_ascii_lowercase();
    let idx = lower.find("please wait ")?;
    let rest = &lower[idx + "please wait ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let n: u64 = digits.parse().ok()?;
    let unit = rest[digits.len()..].trim_start();
    if unit.starts_with("second") || unit.starts_with("sec") || unit.starts_with('s') {
        Some(n)
    } else if unit.starts_with("minute") {
        n.checked_mul(60)
    } else if unit.starts_with("hour") {
        n.checked_mul(3600)
    } else {
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes() {
        let b =
            ErrorBody::parse(br#"{"error":{"message":"bad","type":"server_error","param":null,"code":null}}"#).unwrap();
        assert_eq!((b.kind.as_deref(), b.code, b.param), (Some("server_error"), None, None));
        let b = ErrorBody::parse(br#"{"error":["Input should be 'tool'","Field required"]}"#).unwrap();
        assert_eq!(b.messages.len(), 2);
        assert_eq!(b.message, "Input should be 'tool'; Field required");
        let b = ErrorBody::parse(br#"{"error":"model 'x' not found"}"#).unwrap();
        assert_eq!(b.message, "model 'x' not found");
        assert!(ErrorBody::parse(b"<html>").is_none());
        assert!(ErrorBody::parse(b"{}").is_none());
    }

    #[test]
    fn please_wait_is_read() {
        let b = ErrorBody {
            message: "Rate limit of 10 per 60s exceeded. Please wait 46 seconds before retrying.".into(),
            ..Default::default()
        };
        assert_eq!(b.please_wait_seconds(), Some(46));
        let b =
            ErrorBody { message: "nope".into(), details: Some("Please wait 2 minutes".into()), ..Default::default() };
        assert_eq!(b.please_wait_seconds(), Some(120));
    }
}
