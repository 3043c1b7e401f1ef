//! Live tests against real providers. They run only with `GM_LIVE_TESTS=1` and the provider's credentials:
//! `OPENAI_API_KEY` for OpenAI, `AZURE_OPENAI_API_KEY` with `AZURE_OPENAI_ENDPOINT` and `GM_AZURE_DEPLOYMENT`
//! for Azure, `GM_LIVE_BASE_URL` (and `GM_LIVE_MODEL`) for an OpenAI-compatible server, and a GitHub token
//! for the retirement check. Without them each test reports itself skipped (`gm_testkit::skip::live`).

use gm_core::{ChatMessage, ChatRequest, ProviderKind};
use gm_http::auth::{credential_for, CredentialSource};
use gm_http::{Client, Credential};
use gm_testkit::skip::live;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

async fn ask(client: &Client, model: &str) {
    let req = ChatRequest::new(model, vec![ChatMessage::user("Say 'bread' in French, one word.")]).with_max_tokens(10);
    let whole = client.chat(&req).await.expect("chat");
    assert!(!whole.text().is_empty());
    let streamed = client.chat_stream(&req).await.expect("stream").collect().await.expect("collect");
    assert!(!streamed.text().is_empty());
}

#[tokio::test]
async fn openai_live() {
    let Some([key]) = live(["OPENAI_API_KEY"]) else { return };
    let c = Client::builder()
        .provider(ProviderKind::OpenAi)
        .credential(Credential::new(key, CredentialSource::Env("OPENAI_API_KEY")))
        .build()
        .unwrap();
    assert!(!c.models().await.unwrap().is_empty());
    ask(&c, "gpt-4o-mini").await;
}

#[tokio::test]
async fn azure_live() {
    let needs = ["AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "GM_AZURE_DEPLOYMENT"];
    let Some([_, _, deployment]) = live(needs) else { return };
    let (Some(cred), Some(base)) = credential_for(ProviderKind::Azure, &env, &|| None) else {
        panic!("AZURE_OPENAI_API_KEY and AZURE_OPENAI_ENDPOINT are set but give no Azure credential")
    };
    let c = Client::builder().provider(ProviderKind::Azure).base_url(base).credential(cred).build().unwrap();
    ask(&c, &deployment).await;
}

#[tokio::test]
async fn openai_compatible_live() {
    let Some([base]) = live(["GM_LIVE_BASE_URL"]) else { return };
    let model = env("GM_LIVE_MODEL").unwrap_or_else(|| "llama3.2".into());
    let c = Client::builder().provider(ProviderKind::OpenAiCompatible).base_url(base).build().unwrap();
    ask(&c, &model).await;
}

#[tokio::test]
async fn github_live_reports_the_retirement() {
    let Some([token]) = live(["GITHUB_TOKEN"]) else { return };
    let c = Client::builder().provider(ProviderKind::Github).credential(Credential::explicit(token)).build().unwrap();
    let e = c.chat(&ChatRequest::new("openai/gpt-4.1-mini", vec![ChatMessage::user("hi")])).await.unwrap_err();
    assert!(e.is_retired(), "{e}");
}
