//! Text in and out of a model: the checkpoint's `tokenizer.json` with transformers' call-time
//! overrides, its chat template rendered the way transformers renders it, and incremental
//! decoding that never emits half a character.

use std::path::Path;

use minijinja::{Environment, ErrorKind, Value as JinjaValue};
use mlox_core::{Error, Result};
use serde_json::Value;
use tokenizers::Tokenizer;

/// One chat message as a template sees it: `role`, `content` and whatever else the client sent
/// (`name`, `tool_calls`, …).
pub type Message = serde_json::Map<String, Value>;

pub struct TextCodec {
    tokenizer: Tokenizer,
    template: Option<String>,
    bos_token: Option<String>,
    eos_token: Option<String>,
    /// transformers cleans up spaces before punctuation when decoding for MLflow, except for
    /// BPE tokenizers, where the clean-up would corrupt text.
    cleans_up_spaces: bool,
}

/// A special-token entry of `tokenizer_config.json`: a string or `{"content": …}`.
fn token_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content")?.as_str().map(str::to_owned),
        _ => None,
    }
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::invalid(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::internal(format!("{}: {e}", path.display()))),
    }
}

impl TextCodec {
    /// Reads a tokenizer directory (`tokenizer.json`, `tokenizer_config.json`, and the chat
    /// template from `chat_template.jinja`, which takes precedence over the config's
    /// `chat_template`, as in transformers). `max_length` truncates encodings (embeddings);
    /// `None` leaves them whole.
    pub fn open(dir: &Path, max_length: Option<usize>) -> Result<TextCodec> {
        let file = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&file)
            .map_err(|e| Error::invalid(format!("{}: {e}", file.display())))?;
        // tokenizer.json may carry the padding and truncation of its last use (all-MiniLM-L6-v2
        // pads to 128); transformers replaces both on every call.
        tokenizer.with_padding(None);
        let truncation = max_length.map(|max_length| tokenizers::TruncationParams {
            max_length,
            ..Default::default()
        });
        tokenizer
            .with_truncation(truncation)
            .map_err(|e| Error::invalid(format!("tokenizer truncation: {e}")))?;
        let config = read_json(&dir.join("tokenizer_config.json"))?.unwrap_or(Value::Null);
        let template = match std::fs::read_to_string(dir.join("chat_template.jinja")) {
            Ok(t) => Some(t),
            Err(_) => match config.get("chat_template") {
                Some(Value::String(t)) => Some(t.clone()),
                // A list of named templates: the one named "default".
                Some(Value::Array(named)) => named
                    .iter()
                    .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                    .and_then(|t| t.get("template"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                _ => None,
            },
        };
        let cleans_up_spaces = !matches!(tokenizer.get_model(), tokenizers::ModelWrapper::BPE(_));
        Ok(TextCodec {
            cleans_up_spaces,
            tokenizer,
            template,
            bos_token: token_text(config.get("bos_token")),
            eos_token: token_text(config.get("eos_token")),
        })
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }

    pub fn eos_token(&self) -> Option<&str> {
        self.eos_token.as_deref()
    }

    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        self.tokenizer
            .encode(text, add_special_tokens)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| Error::invalid(format!("the text cannot be tokenized: {e}")))
    }

    /// Ids, attention mask and type ids of each text, for encoder models.
    pub fn encode_for_encoder(&self, text: &str) -> Result<tokenizers::Encoding> {
        self.tokenizer
            .encode(text, true)
            .map_err(|e| Error::invalid(format!("the text cannot be tokenized: {e}")))
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| Error::internal(format!("the tokens cannot be decoded: {e}")))
    }

    /// Decodes as MLflow does (`skip_special_tokens=True, clean_up_tokenization_spaces=True`).
    pub fn decode_like_mlflow(&self, ids: &[u32]) -> Result<String> {
        let text = self.decode(ids)?;
        Ok(if self.cleans_up_spaces {
            clean_up_tokenization(&text)
        } else {
            text
        })
    }

    /// Renders `messages` with the chat template, as transformers' `apply_chat_template(…,
    /// tokenize=False, add_generation_prompt=True)` does.
    pub fn render_chat(&self, messages: &[Message]) -> Result<String> {
        let template = self.template.as_deref().ok_or_else(|| {
            Error::invalid(
                "this model's tokenizer has no chat template, so it cannot take messages",
            )
        })?;
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        // transformers' `tojson` is json.dumps(ensure_ascii=False): no HTML escaping.
        env.add_filter(
            "tojson",
            |value: JinjaValue,
             indent: Option<usize>|
             -> std::result::Result<String, minijinja::Error> {
                let json: Value = serde_json::to_value(&value).map_err(|e| {
                    minijinja::Error::new(ErrorKind::InvalidOperation, e.to_string())
                })?;
                let text = match indent {
                    Some(_) => serde_json::to_string_pretty(&json),
                    None => serde_json::to_string(&json),
                };
                text.map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, e.to_string()))
            },
        );
        env.add_function("strftime_now", |format: String| -> String {
            format_now(&format)
        });
        env.add_template("chat", template).map_err(|e| {
            Error::invalid(format!("the model's chat template does not parse: {e}"))
        })?;
        let context = minijinja::context! {
            messages => messages,
            add_generation_prompt => true,
            bos_token => self.bos_token.clone().unwrap_or_default(),
            eos_token => self.eos_token.clone().unwrap_or_default(),
        };
        env.get_template("chat")
            .and_then(|t| t.render(context))
            .map_err(|e| Error::invalid(format!("the chat template refused the messages: {e}")))
    }
}

/// transformers' `clean_up_tokenization`: no space before punctuation and English
/// contractions.
fn clean_up_tokenization(text: &str) -> String {
    text.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
}

/// The few `strftime` fields chat templates use for "today's date" (`%d %b %Y`, `%Y-%m-%d`).
fn format_now(format: &str) -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    let (year, month, day) = mlox_core::trace_info::civil_date(days);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    const FULL: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let m = (month - 1) as usize;
    format
        .replace("%Y", &year.to_string())
        .replace("%m", &format!("{month:02}"))
        .replace("%d", &format!("{day:02}"))
        .replace("%B", FULL[m])
        .replace("%b", MONTHS[m])
}

/// Turns generated ids into text piece by piece. A piece is released once it is final (a
/// trailing replacement character may still become a character when the next byte-level token
/// arrives) and cannot be the start of a stop string, so a stream never shows text that a
/// stop later removes or that decoding later changes.
pub struct Detokenizer {
    ids: Vec<u32>,
    /// Everything decoded so far (replacement characters included).
    text: String,
    /// The end of the text released so far.
    released: usize,
    /// Where a stop ended the text.
    cut: Option<usize>,
}

impl Detokenizer {
    pub fn new() -> Detokenizer {
        Detokenizer {
            ids: Vec::new(),
            text: String::new(),
            released: 0,
            cut: None,
        }
    }

    /// Adds one id.
    pub fn push(&mut self, codec: &TextCodec, id: u32) -> Result<()> {
        self.ids.push(id);
        self.text = codec.decode(&self.ids)?;
        Ok(())
    }

    /// The answer: everything decoded, up to a stop.
    pub fn text(&self) -> &str {
        &self.text[..self.cut.unwrap_or(self.text.len())]
    }

    /// The end of the text that later tokens cannot change.
    fn settled(&self) -> usize {
        if let Some(cut) = self.cut {
            return cut;
        }
        self.text.trim_end_matches('\u{FFFD}').len()
    }

    /// Releases the settled text that cannot grow into one of `stops`; with `all` (the
    /// generation ended), everything up to a stop.
    pub fn release(&mut self, stops: &[String], all: bool) -> String {
        let end = if all {
            self.cut.unwrap_or(self.text.len())
        } else {
            let settled = self.settled().max(self.released);
            let pending = &self.text[self.released..settled];
            let keep = stops
                .iter()
                .map(|s| held_back(pending, s))
                .max()
                .unwrap_or(0);
            settled - keep
        };
        let out = self.text[self.released..end].to_owned();
        self.released = end;
        out
    }

    /// Whether a stop text occurs; if so the answer ends at it (`keep`: after it, else before).
    pub fn contains_stop(&mut self, stops: &[String], keep: bool) -> bool {
        let first = stops
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| self.text.find(s.as_str()).map(|at| (at, s.len())))
            .min();
        match first {
            Some((at, len)) => {
                self.cut = Some(if keep { at + len } else { at });
                true
            }
            None => false,
        }
    }
}

impl Default for Detokenizer {
    fn default() -> Self {
        Detokenizer::new()
    }
}

/// The length of the longest suffix of `text` that is a proper prefix of `stop`, on character
/// boundaries.
fn held_back(text: &str, stop: &str) -> usize {
    (1..stop.len().min(text.len() + 1))
        .rev()
        .filter(|&n| text.is_char_boundary(text.len() - n) && stop.is_char_boundary(n))
        .find(|&n| text.ends_with(&stop[..n]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suffix_that_may_grow_into_a_stop_is_held_back() {
        assert_eq!(held_back("hello wor", "world"), 3);
        assert_eq!(held_back("hello", "world"), 0);
        assert_eq!(
            held_back("abc", "c"),
            0,
            "a whole stop is not a proper prefix"
        );
        assert_eq!(held_back("xé", "éa"), "é".len());
        assert_eq!(held_back("", "stop"), 0);
    }

    fn with_text(text: &str) -> Detokenizer {
        Detokenizer {
            text: text.into(),
            ..Detokenizer::new()
        }
    }

    #[test]
    fn a_stop_ends_the_text_before_it_or_after_it() {
        let stops = vec![".".to_owned(), "three".to_owned()];
        assert!(!with_text("x").contains_stop(&["zz".into()], false));
        let mut before = with_text("one two. three");
        assert!(before.contains_stop(&stops, false));
        assert_eq!(before.text(), "one two");
        assert_eq!(before.release(&stops, true), "one two");
        let mut kept = with_text("one two. three");
        assert!(kept.contains_stop(&stops, true));
        assert_eq!(kept.text(), "one two.");
    }

    #[test]
    fn trailing_replacement_characters_and_stop_prefixes_wait() {
        let stops = vec!["END".to_owned()];
        let mut d = with_text("abc\u{FFFD}");
        assert_eq!(d.release(&stops, false), "abc");
        d.text = "abcé E".into();
        assert_eq!(d.release(&stops, false), "é ");
        assert_eq!(d.release(&stops, true), "E");
        assert_eq!(d.release(&stops, true), "");
    }

    #[test]
    fn clean_up_removes_spaces_before_punctuation_and_contractions() {
        assert_eq!(
            clean_up_tokenization("hello , world ! it 's i 'm we 're do n't ."),
            "hello, world! it's i'm we're don't."
        );
    }

    #[test]
    fn dates_are_formatted_for_templates() {
        let today = format_now("%Y-%m-%d");
        assert_eq!(today.len(), 10);
        assert!(today.starts_with("20"), "{today}");
        assert!(!format_now("%d %b %Y").contains('%'));
    }
}
