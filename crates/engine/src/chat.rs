//! The model's chat template (Jinja, from GGUF `tokenizer.chat_template`), rendered with minijinja.
//!
//! The rendered prompt is tokenized with control tokens parsed, as llama.cpp and vLLM do; a user who
//! types `<|im_end|>` therefore produces that control token. Falls back to ChatML when the GGUF has no
//! template.

use candle_core::quantized::gguf_file::Content;
use minijinja::{Environment, context};

use crate::ChatMessage;
use crate::gguf;

const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// The template failed to parse or render.
#[derive(Debug, thiserror::Error)]
#[error("chat template: {0}")]
pub struct TemplateError(String);

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compile the GGUF's template (or ChatML).
    pub fn from_gguf(content: &Content) -> Result<Self, TemplateError> {
        let source = gguf::read_string(content, "tokenizer.chat_template").unwrap_or(CHATML).to_string();
        let token = |key: &str| -> String {
            let Ok(id) = gguf::read_usize(content, key) else { return String::new() };
            gguf::read_strings(content, "tokenizer.ggml.tokens")
                .ok()
                .and_then(|tokens| tokens.get(id).map(|t| (*t).to_string()))
                .unwrap_or_default()
        };
        Self::new(source, token("tokenizer.ggml.bos_token_id"), token("tokenizer.ggml.eos_token_id"))
    }

    /// Compile `source`.
    pub fn new(source: String, bos_token: String, eos_token: String) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.add_function("raise_exception", |message: String| -> Result<String, minijinja::Error> {
            Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, message))
        });
        env.add_template_owned("chat", source).map_err(|e| TemplateError(e.to_string()))?;
        Ok(Self { env, bos_token, eos_token })
    }

    /// Render `messages` followed by the opening of an assistant turn.
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String, TemplateError> {
        let template = self.env.get_template("chat").map_err(|e| TemplateError(e.to_string()))?;
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => true,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(|e| TemplateError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: &str, content: &str) -> ChatMessage {
        ChatMessage { role: role.into(), content: content.into() }
    }

    #[test]
    fn chatml_renders_turns_and_generation_prompt() {
        let t = ChatTemplate::new(CHATML.into(), String::new(), String::new()).unwrap();
        let out = t.render(&[msg("system", "Be brief."), msg("user", "Hi")]).unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn raise_exception_is_an_error() {
        let t =
            ChatTemplate::new("{{ raise_exception('no') }}".into(), String::new(), String::new()).unwrap();
        assert!(t.render(&[]).is_err());
    }
}
