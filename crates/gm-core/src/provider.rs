use std::fmt;
use std::str::FromStr;

/// The kinds of provider gm speaks to. The wire protocol differs in paths, headers and the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProviderKind {
    /// GitHub Models (`https://models.github.ai`), retired on 2026-07-30.
    Github,
    /// Azure AI Foundry / Azure OpenAI, the OpenAI-compatible v1 endpoint of a resource.
    Azure,
    /// OpenAI (`https://api.openai.com/v1`).
    OpenAi,
    /// Any server speaking the OpenAI chat completions protocol (Ollama, vLLM, llama.cpp, LM Studio).
    OpenAiCompatible,
    /// The in-process demo provider: deterministic offline answers.
    Demo,
}

impl ProviderKind {
    /// Every provider kind, in the order the documentation lists them.
    pub const ALL: [ProviderKind; 5] = [Self::Github, Self::Azure, Self::OpenAi, Self::OpenAiCompatible, Self::Demo];

    /// The name used on the command line and in configuration (`github`, `azure`, `openai`, `openai-compatible`, `demo`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Github => "github",
            Self::Azure => "azure",
            Self::OpenAi => "openai",
            Self::OpenAiCompatible => "openai-compatible",
            Self::Demo => "demo",
        }
    }

    /// Whether the catalog and chat paths are the OpenAI-style `/models` and `/chat/completions`.
    pub fn is_openai_style(self) -> bool {
        matches!(self, Self::Azure | Self::OpenAi | Self::OpenAiCompatible)
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A provider name that is not one of [`ProviderKind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider `{0}`; use one of github, azure, openai, openai-compatible, demo")]
pub struct UnknownProvider(pub String);

impl FromStr for ProviderKind {
    type Err = UnknownProvider;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "github" | "github-models" => Ok(Self::Github),
            "azure" | "azure-openai" | "foundry" => Ok(Self::Azure),
            "openai" => Ok(Self::OpenAi),
            "openai-compatible" | "compatible" | "ollama" | "vllm" | "llama.cpp" | "lmstudio" => {
                Ok(Self::OpenAiCompatible)
            }
            "demo" => Ok(Self::Demo),
            _ => Err(UnknownProvider(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in ProviderKind::ALL {
            assert_eq!(p.as_str().parse::<ProviderKind>().unwrap(), p);
        }
        assert!("bogus".parse::<ProviderKind>().unwrap_err().to_string().contains("openai-compatible"));
    }
}
