//! Error bodies exactly as the real services sent them (see `shared/fixtures/github-models/errors/`).

/// 410 after the retirement of GitHub Models.
pub const RETIRED_410: &str = r#"{"error":{"code":"github_models_retirement_brownout","message":"GitHub Models is temporarily unavailable as part of a scheduled retirement brownout."}}"#;

/// 401 for a token without access.
pub const UNAUTHORIZED_401: &str = r#"{"error":{"code":"unauthorized","message":"Resource not accessible by integration","details":"Resource not accessible by integration"}}"#;

/// 401 for a missing or wrong key, as OpenAI answers it.
pub const INVALID_API_KEY_401: &str = r#"{"error":{"message":"Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;

/// 500 as GPT-5 answered it (OpenAI envelope).
pub const SERVER_ERROR_500: &str = r#"{"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}"#;

/// 400 when a model refuses streaming (o1, OpenAI envelope).
pub const UNSUPPORTED_STREAM_400: &str = r#"{"error":{"message":"Unsupported value: 'stream' does not support true with this model. Supported values are: false.","type":"invalid_request_error","param":"stream","code":"unsupported_value"}}"#;

/// 422 for a request that fails validation: the array-of-strings form.
pub const VALIDATION_422: &str = r#"{"error":["Input should be 'tool'","Field required"]}"#;

/// 404 for an unknown model on models.github.ai.
pub fn unknown_model_404(model: &str) -> String {
    let m = format!("Unknown model: {model}");
    serde_json::json!({"error": {"code": "unknown_model", "message": m, "details": m}}).to_string()
}

/// 404 for an unknown model on an OpenAI-style path.
pub fn model_not_found_openai(model: &str) -> String {
    serde_json::json!({"error": {"message": format!("The model `{model}` does not exist or you do not have access to it."),
        "type": "invalid_request_error", "param": "model", "code": "model_not_found"}})
    .to_string()
}

/// 413 for a request over the tier's input-token cap.
pub fn tokens_limit_413(model_name: &str, max: u64) -> String {
    let m = format!("Request body too large for {model_name} model. Max size: {max} tokens.");
    serde_json::json!({"error": {"code": "tokens_limit_reached", "message": m, "details": m}}).to_string()
}

/// 429 for a per-minute (or scaled) window.
pub fn rate_limited_429(limit: u64, window_secs: u64, kind: &str, wait_secs: u64) -> String {
    let m = format!(
        "Rate limit of {limit} per {window_secs}s exceeded for {kind}. Please wait {wait_secs} seconds before retrying."
    );
    serde_json::json!({"error": {"code": "RateLimitReached", "message": m, "details": m}}).to_string()
}

/// 400 for a body that is not a valid request.
pub fn bad_request(message: &str) -> String {
    serde_json::json!({"error": {"code": "invalid_request_body", "message": message, "details": null}}).to_string()
}
