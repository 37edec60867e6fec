//! The tokenizer against transformers 5.17: chat templates rendered and encoded exactly as
//! `apply_chat_template` does (fixtures from scripts/make_chat_fixtures.py), plain encodings,
//! special and stop ids, and the errors for bad input.

use std::path::{Path, PathBuf};

use r1kit_model::tokenizer::{ChatMessage, Tokenizer, TokenizerError};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

const ASSETS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/tokenizers");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/chat");

fn asset_dir(name: &str) -> PathBuf {
    let dir = Path::new(ASSETS).join(name);
    assert!(
        dir.join("tokenizer.json").exists(),
        "{} is missing: run scripts/fetch-assets.sh",
        dir.display()
    );
    dir
}

fn load(name: &str) -> Tokenizer {
    Tokenizer::from_dir(asset_dir(name)).unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

/// A scratch directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("r1kit-chat-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Deserialize)]
struct Fixture {
    /// The folder under assets/tokenizers.
    tokenizer: String,
    /// A template used instead of the tokenizer's own (Qwen2.5's, through Qwen3's vocabulary).
    #[serde(default)]
    chat_template: Option<String>,
    transformers_version: String,
    vocab_size_with_added: usize,
    cases: Vec<ChatCase>,
    encodings: Vec<EncodingCase>,
}

#[derive(Deserialize)]
struct ChatCase {
    name: String,
    #[serde(default)]
    template: Option<String>,
    messages: Vec<ChatMessage>,
    add_generation_prompt: bool,
    extra: Map<String, Json>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    ids: Option<Vec<u32>>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct EncodingCase {
    text: String,
    add_special_tokens: bool,
    ids: Vec<u32>,
    decoded_skip_special: String,
}

fn read_fixture<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let path = Path::new(FIXTURES).join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn case_label(case: &ChatCase) -> String {
    format!(
        "{} (add_generation_prompt={}, extra={:?})",
        case.name, case.add_generation_prompt, case.extra
    )
}

/// Renders and encodes every case; returns one line per mismatch so a failure shows them all.
fn chat_mismatches(tokenizer: &Tokenizer, cases: &[ChatCase]) -> Vec<String> {
    let mut mismatches = Vec::new();
    for case in cases {
        let label = case_label(case);
        let rendered = tokenizer.apply_chat_template(
            &case.messages,
            case.add_generation_prompt,
            Some(&case.extra),
        );
        match (&rendered, &case.text, &case.error) {
            (Ok(text), Some(expected), _) if text == expected => {}
            (Ok(text), Some(expected), _) => mismatches.push(format!(
                "{label}: text\n  got      {text:?}\n  expected {expected:?}"
            )),
            (Err(e), _, Some(expected)) if e.to_string().contains(expected.as_str()) => continue,
            (Err(e), _, _) => mismatches.push(format!(
                "{label}: error {e}, expected {:?}",
                case.text.as_ref().or(case.error.as_ref())
            )),
            (Ok(text), None, _) => mismatches.push(format!(
                "{label}: rendered {text:?}, expected error {:?}",
                case.error
            )),
        }
        if let Some(expected) = &case.ids {
            match tokenizer.encode_chat(
                &case.messages,
                case.add_generation_prompt,
                Some(&case.extra),
            ) {
                Ok(ids) if &ids == expected => {}
                Ok(ids) => mismatches.push(format!(
                    "{label}: ids\n  got      {ids:?}\n  expected {expected:?}"
                )),
                Err(e) => mismatches.push(format!("{label}: encode_chat error {e}")),
            }
        }
    }
    mismatches
}

/// The fixture's tokenizer, with its chat template replaced when the fixture carries one.
fn fixture_tokenizer(fixture: &Fixture, scratch: &TempDir) -> Tokenizer {
    let Some(template) = &fixture.chat_template else {
        return load(&fixture.tokenizer);
    };
    let dir = asset_dir(&fixture.tokenizer);
    let mut config: Map<String, Json> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer_config.json")).unwrap())
            .unwrap();
    config.insert("chat_template".into(), json!(template));
    let config_path = scratch.write(
        "tokenizer_config.json",
        serde_json::to_string(&config).unwrap(),
    );
    Tokenizer::from_files(
        dir.join("tokenizer.json"),
        Some(&config_path),
        None::<&Path>,
    )
    .unwrap()
}

fn check_against_transformers(name: &str) {
    let fixture: Fixture = read_fixture(&format!("{name}.json"));
    let scratch = TempDir::new(&format!("fixture-{name}"));
    let tokenizer = fixture_tokenizer(&fixture, &scratch);
    assert!(tokenizer.has_chat_template());
    assert_eq!(
        tokenizer.vocab_size(),
        fixture.vocab_size_with_added,
        "{name}: vocab size with added tokens"
    );
    assert!(!fixture.cases.is_empty());

    let mut mismatches = chat_mismatches(&tokenizer, &fixture.cases);
    for case in &fixture.encodings {
        let ids = tokenizer
            .encode(&case.text, case.add_special_tokens)
            .unwrap();
        if ids != case.ids {
            mismatches.push(format!(
                "encode({:?}, {}): got {ids:?}, expected {:?}",
                case.text, case.add_special_tokens, case.ids
            ));
        }
        let decoded = tokenizer.decode(&case.ids, true).unwrap();
        if decoded != case.decoded_skip_special {
            mismatches.push(format!(
                "decode({:?}): got {decoded:?}, expected {:?}",
                case.ids, case.decoded_skip_special
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{name}: {} mismatches with transformers {}:\n{}",
        mismatches.len(),
        fixture.transformers_version,
        mismatches.join("\n")
    );
}

#[test]
fn tokenizer_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Tokenizer>();
    assert_send_sync::<TokenizerError>();
}

#[test]
fn smollm2_matches_transformers() {
    check_against_transformers("smollm2");
}

#[test]
fn qwen3_matches_transformers() {
    check_against_transformers("qwen3");
}

/// Qwen2.5's template (default system prompt, tools) from the Qwen2.5-Coder GGUF's metadata.
#[test]
fn qwen2_5_template_matches_transformers() {
    check_against_transformers("qwen2_5");
}

#[test]
fn llama3_matches_transformers() {
    check_against_transformers("llama3");
}

/// Templates written to exercise tojson, Python methods and printing, namespaces, whitespace
/// control, date_string and raise_exception, rendered by transformers' Jinja environment.
#[test]
fn synthetic_templates_match_transformers() {
    #[derive(Deserialize)]
    struct Synthetic {
        cases: Vec<ChatCase>,
    }
    let synthetic: Synthetic = read_fixture("templates.json");
    let smollm2 = asset_dir("smollm2");
    let base_config: Map<String, Json> = serde_json::from_str(
        &std::fs::read_to_string(smollm2.join("tokenizer_config.json")).unwrap(),
    )
    .unwrap();
    let scratch = TempDir::new("synthetic");
    let mut mismatches = Vec::new();
    let mut errors_checked = 0;
    for case in &synthetic.cases {
        let mut config = base_config.clone();
        config.insert(
            "chat_template".into(),
            json!(
                case.template
                    .as_deref()
                    .expect("synthetic cases carry a template")
            ),
        );
        let config_path = scratch.write(
            "tokenizer_config.json",
            serde_json::to_string(&config).unwrap(),
        );
        let tokenizer = Tokenizer::from_files(
            smollm2.join("tokenizer.json"),
            Some(&config_path),
            None::<&Path>,
        )
        .unwrap();
        errors_checked += usize::from(case.error.is_some());
        mismatches.extend(chat_mismatches(&tokenizer, std::slice::from_ref(case)));
    }
    assert!(
        errors_checked > 0,
        "the fixture should hold a raise_exception case"
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn raise_exception_error_names_the_file_and_message() {
    let smollm2 = asset_dir("smollm2");
    let scratch = TempDir::new("raise");
    let config = scratch.write(
        "tokenizer_config.json",
        json!({"chat_template": "{% if messages[0].role != 'system' %}{{ raise_exception('roles out of order') }}{% endif %}"})
            .to_string(),
    );
    let tokenizer =
        Tokenizer::from_files(smollm2.join("tokenizer.json"), Some(&config), None::<&Path>)
            .unwrap();
    let err = tokenizer
        .apply_chat_template(&[ChatMessage::new("user", "hi")], true, None)
        .unwrap_err();
    assert!(
        matches!(err, TokenizerError::TemplateRender { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("roles out of order") && message.contains(&config.display().to_string()),
        "{message}"
    );
    assert!(!message.contains('\n'), "one line: {message}");
}

fn generation_config_tokenizer(name: &str, generation_config: Json) -> (TempDir, Tokenizer) {
    let dir = asset_dir(name);
    let scratch = TempDir::new(&format!("gen-{name}"));
    let path = scratch.write("generation_config.json", generation_config.to_string());
    let tokenizer = Tokenizer::from_files(
        dir.join("tokenizer.json"),
        Some(dir.join("tokenizer_config.json")),
        Some(&path),
    )
    .unwrap();
    (scratch, tokenizer)
}

#[test]
fn stop_ids_join_generation_config_and_tokenizer_eos() {
    // Qwen2.5-Instruct's generation_config: two EOS ids; the tokenizer's EOS is <|im_end|>.
    let (_dir, qwen) = generation_config_tokenizer(
        "qwen3",
        json!({"bos_token_id": 151643, "eos_token_id": [151645, 151643]}),
    );
    assert_eq!(qwen.eos_token_id(), Some(151645));
    assert_eq!(qwen.token_to_id("<|im_end|>"), Some(151645));
    assert_eq!(qwen.stop_token_ids(), vec![151645, 151643]);
    assert_eq!(qwen.pad_token_id(), qwen.token_to_id("<|endoftext|>"));
    assert_eq!(qwen.bos_token_id(), None, "Qwen has no BOS token");

    // A single int, different from the tokenizer's EOS (<|end_of_text|>): both stop.
    let (_dir, llama) = generation_config_tokenizer("llama3", json!({"eos_token_id": 128009}));
    assert_eq!(llama.eos_token_id(), Some(128001));
    assert_eq!(llama.stop_token_ids(), vec![128009, 128001]);
    assert_eq!(llama.id_to_token(128009).as_deref(), Some("<|eot_id|>"));

    // Without a generation config only the tokenizer's EOS stops.
    assert_eq!(load("smollm2").stop_token_ids(), vec![2]);
}

#[test]
fn bad_generation_config_names_file_and_field() {
    let dir = asset_dir("smollm2");
    let scratch = TempDir::new("bad-gen");
    let path = scratch.write(
        "generation_config.json",
        r#"{"eos_token_id": ["<|im_end|>"]}"#,
    );
    let err = Tokenizer::from_files(
        dir.join("tokenizer.json"),
        Some(dir.join("tokenizer_config.json")),
        Some(&path),
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(&path.display().to_string()) && message.contains("eos_token_id"),
        "{message}"
    );
}

#[test]
fn vocab_check_accepts_padded_embeddings_and_rejects_small_ones() {
    let qwen = load("qwen3");
    assert_eq!(qwen.vocab_size(), 151_669);
    // Qwen's checkpoints have 151,936 embedding rows: more rows than tokens is fine.
    qwen.check_vocab_fits(151_936).unwrap();
    qwen.check_vocab_fits(151_669).unwrap();

    let err = qwen.check_vocab_fits(151_643).unwrap_err();
    match &err {
        TokenizerError::TokenIdOutOfRange {
            id,
            token,
            rows,
            count,
            ..
        } => {
            assert_eq!(
                (*id, token.as_str(), *rows, *count),
                (151_668, "</think>", 151_643, 26)
            );
        }
        other => panic!("expected TokenIdOutOfRange, got {other:?}"),
    }
    let message = err.to_string();
    for part in [
        "tokenizer.json",
        "151668",
        "</think>",
        "151643 embedding rows",
    ] {
        assert!(
            message.contains(part),
            "{message:?} should contain {part:?}"
        );
    }
    assert!(!message.contains('\n'));

    // SmolLM2's tokenizer pairs with a 49,152-row embedding exactly.
    let smol = load("smollm2");
    smol.check_vocab_fits(49_152).unwrap();
    assert!(
        smol.check_vocab_fits(49_151)
            .unwrap_err()
            .to_string()
            .contains("49151 embedding rows")
    );
}

#[test]
fn missing_files_are_named() {
    let scratch = TempDir::new("missing");
    let err = Tokenizer::from_dir(&scratch.0).unwrap_err();
    assert!(matches!(err, TokenizerError::MissingFile { .. }), "{err:?}");
    let expected = scratch.0.join("tokenizer.json").display().to_string();
    assert_eq!(err.to_string(), format!("{expected}: file not found"));

    let dir = asset_dir("smollm2");
    let missing_config = scratch.0.join("tokenizer_config.json");
    let err = Tokenizer::from_files(
        dir.join("tokenizer.json"),
        Some(&missing_config),
        None::<&Path>,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}: file not found", missing_config.display())
    );

    let missing_generation = scratch.0.join("generation_config.json");
    let err = Tokenizer::from_files(
        dir.join("tokenizer.json"),
        None::<&Path>,
        Some(&missing_generation),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&missing_generation.display().to_string()),
        "{err}"
    );
}

#[test]
fn unreadable_files_are_named() {
    let dir = asset_dir("smollm2");
    let scratch = TempDir::new("unreadable");

    // A tokenizer.json cut short, as an interrupted download leaves it.
    let full = std::fs::read(dir.join("tokenizer.json")).unwrap();
    let truncated = scratch.write("tokenizer.json", &full[..full.len() / 2]);
    let err = Tokenizer::from_files(&truncated, None::<&Path>, None::<&Path>).unwrap_err();
    assert!(matches!(err, TokenizerError::Load { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with(&truncated.display().to_string()) && !message.contains('\n'),
        "{message}"
    );

    let config = scratch.write("tokenizer_config.json", "{\"eos_token\": \"<|im_end|>\",");
    let err = Tokenizer::from_files(dir.join("tokenizer.json"), Some(&config), None::<&Path>)
        .unwrap_err();
    assert!(matches!(err, TokenizerError::Json { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("{}: not valid JSON", config.display())),
        "{err}"
    );

    // A directory where a file should be.
    let err = Tokenizer::from_files(&scratch.0, None::<&Path>, None::<&Path>).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&scratch.0.display().to_string()),
        "{err}"
    );
}

#[test]
fn special_tokens_accept_added_token_objects_and_reject_unknown_tokens() {
    let dir = asset_dir("smollm2");
    let scratch = TempDir::new("special");
    let config = scratch.write(
        "tokenizer_config.json",
        json!({"bos_token": {"__type": "AddedToken", "content": "<|im_start|>", "lstrip": false}, "eos_token": "<|im_end|>", "pad_token": null})
            .to_string(),
    );
    let tokenizer =
        Tokenizer::from_files(dir.join("tokenizer.json"), Some(&config), None::<&Path>).unwrap();
    assert_eq!(
        (
            tokenizer.bos_token_id(),
            tokenizer.eos_token_id(),
            tokenizer.pad_token_id()
        ),
        (Some(1), Some(2), None)
    );
    assert!(!tokenizer.has_chat_template());
    let err = tokenizer
        .apply_chat_template(&[ChatMessage::new("user", "hi")], true, None)
        .unwrap_err();
    assert!(
        matches!(err, TokenizerError::NoChatTemplate { .. }),
        "{err:?}"
    );

    let config = scratch.write(
        "tokenizer_config.json",
        json!({"eos_token": "<|not_a_token|>"}).to_string(),
    );
    let message = Tokenizer::from_files(dir.join("tokenizer.json"), Some(&config), None::<&Path>)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains(&config.display().to_string())
            && message.contains("eos_token")
            && message.contains("<|not_a_token|>"),
        "{message}"
    );
}

#[test]
fn chat_template_list_picks_default_and_jinja_file_wins() {
    let dir = asset_dir("smollm2");
    let scratch = TempDir::new("template-list");
    std::fs::copy(dir.join("tokenizer.json"), scratch.0.join("tokenizer.json")).unwrap();
    let messages = [ChatMessage::new("user", "hi")];

    scratch.write(
        "tokenizer_config.json",
        json!({"chat_template": [
            {"name": "tool_use", "template": "TOOLS {{ messages[0].content }}"},
            {"name": "default", "template": "DEFAULT {{ messages[0].content }}"}
        ]})
        .to_string(),
    );
    let tokenizer = Tokenizer::from_dir(&scratch.0).unwrap();
    assert_eq!(
        tokenizer
            .apply_chat_template(&messages, false, None)
            .unwrap(),
        "DEFAULT hi"
    );

    // Recent transformers save the template as chat_template.jinja, which takes precedence.
    scratch.write("chat_template.jinja", "JINJA {{ messages[0].content }}\n");
    let tokenizer = Tokenizer::from_dir(&scratch.0).unwrap();
    assert_eq!(
        tokenizer
            .apply_chat_template(&messages, false, None)
            .unwrap(),
        "JINJA hi"
    );
    std::fs::remove_file(scratch.0.join("chat_template.jinja")).unwrap();

    let config = scratch.write(
        "tokenizer_config.json",
        json!({"chat_template": [{"name": "rag", "template": "x"}]}).to_string(),
    );
    let message = Tokenizer::from_dir(&scratch.0).unwrap_err().to_string();
    assert!(
        message.contains(&config.display().to_string())
            && message.contains("default")
            && message.contains("rag"),
        "{message}"
    );
}

#[test]
fn bad_template_error_names_file_and_jinja_problem() {
    let dir = asset_dir("smollm2");
    let scratch = TempDir::new("bad-template");
    let config = scratch.write(
        "tokenizer_config.json",
        json!({"chat_template": "{% for m in messages %}{{ m.content }}"}).to_string(),
    );
    // The tokenizer still loads and encodes; rendering reports the template error.
    let tokenizer =
        Tokenizer::from_files(dir.join("tokenizer.json"), Some(&config), None::<&Path>).unwrap();
    assert_eq!(
        tokenizer.encode("Hello world", false).unwrap(),
        vec![19556, 905]
    );
    let err = tokenizer
        .apply_chat_template(&[ChatMessage::new("user", "hi")], true, None)
        .unwrap_err();
    assert!(
        matches!(err, TokenizerError::TemplateSyntax { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "{}: chat template does not compile: syntax error",
            config.display()
        )),
        "{message}"
    );
    assert!(!message.contains('\n'), "{message}");
}

#[test]
fn strftime_now_renders_todays_date() {
    let dir = asset_dir("smollm2");
    let scratch = TempDir::new("strftime");
    let config = scratch.write(
        "tokenizer_config.json",
        json!({"chat_template": "{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d') }}"})
            .to_string(),
    );
    let tokenizer =
        Tokenizer::from_files(dir.join("tokenizer.json"), Some(&config), None::<&Path>).unwrap();
    let text = tokenizer.apply_chat_template(&[], false, None).unwrap();
    let (short, iso) = text.split_once('|').unwrap();
    let [day, month, year] = short.split(' ').collect::<Vec<_>>()[..] else {
        panic!("{text}")
    };
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month_number = months
        .iter()
        .position(|m| *m == month)
        .unwrap_or_else(|| panic!("{text}"))
        + 1;
    assert_eq!(iso, format!("{year}-{month_number:02}-{day}"), "{text}");
    assert!(year.parse::<u32>().unwrap() >= 2025, "{text}");
}

/// A Llama 3 tokenizer.json whose post-processor adds <|begin_of_text|>, as Meta's own file does.
fn llama3_with_bos_post_processor(scratch: &TempDir) -> Tokenizer {
    let dir = asset_dir("llama3");
    let mut tokenizer_json: Json =
        serde_json::from_slice(&std::fs::read(dir.join("tokenizer.json")).unwrap()).unwrap();
    tokenizer_json["post_processor"] = json!({
        "type": "Sequence",
        "processors": [
            {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                      {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [128000], "tokens": ["<|begin_of_text|>"]}}}
        ]
    });
    let path = scratch.write(
        "tokenizer.json",
        serde_json::to_vec(&tokenizer_json).unwrap(),
    );
    Tokenizer::from_files(path, Some(dir.join("tokenizer_config.json")), None::<&Path>).unwrap()
}

#[test]
fn no_double_bos() {
    let messages = [
        ChatMessage::new("system", "Be brief."),
        ChatMessage::new("user", "Hi!"),
        ChatMessage::new("assistant", "Hello."),
        ChatMessage::new("user", "Bye."),
    ];
    let count = |ids: &[u32], id: u32| ids.iter().filter(|&&x| x == id).count();

    // Llama 3: the template writes <|begin_of_text|>; a tokenizer that adds one too must not
    // add a second.
    let scratch = TempDir::new("bos");
    let llama = llama3_with_bos_post_processor(&scratch);
    let bos = llama.bos_token_id().unwrap();
    assert_eq!(bos, 128_000);
    assert_eq!(
        llama.encode("Hi", true).unwrap(),
        vec![bos, 13347],
        "this tokenizer adds BOS to plain text"
    );
    let ids = llama.encode_chat(&messages, true, None).unwrap();
    assert_eq!((ids[0], count(&ids, bos)), (bos, 1), "{ids:?}");
    let text = llama.apply_chat_template(&messages, true, None).unwrap();
    assert_eq!(ids, llama.encode(&text, false).unwrap());

    // SmolLM2: its BOS is <|im_start|>, which the template writes once per turn.
    let smol = load("smollm2");
    let im_start = smol.bos_token_id().unwrap();
    let ids = smol.encode_chat(&messages, true, None).unwrap();
    assert_eq!(
        (ids[0], ids[1] != im_start, count(&ids, im_start)),
        (im_start, true, 5),
        "{ids:?}"
    );
}

#[test]
fn qwen3_thinking_switch_changes_the_generation_prompt() {
    let qwen = load("qwen3");
    let messages = [ChatMessage::new("user", "2+2?")];
    let mut no_thinking = Map::new();
    no_thinking.insert("enable_thinking".into(), json!(false));
    let plain = qwen.apply_chat_template(&messages, true, None).unwrap();
    let off = qwen
        .apply_chat_template(&messages, true, Some(&no_thinking))
        .unwrap();
    assert_eq!(
        plain,
        "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(off, format!("{plain}<think>\n\n</think>\n\n"));
    let ids = qwen
        .encode_chat(&messages, true, Some(&no_thinking))
        .unwrap();
    let think = qwen.token_to_id("<think>").unwrap();
    assert!(ids.contains(&think));
    assert_eq!(qwen.decode(&ids, false).unwrap(), off);
}

#[test]
fn in_memory_files_load_and_name_their_source_in_errors() {
    let dir = asset_dir("smollm2");
    let tokenizer_json = std::fs::read_to_string(dir.join("tokenizer.json")).unwrap();
    let config = std::fs::read_to_string(dir.join("tokenizer_config.json")).unwrap();
    let generation = r#"{"eos_token_id": [2, 0]}"#;
    let tokenizer = Tokenizer::from_json_strings(
        &tokenizer_json,
        Some(&config),
        Some(generation),
        "model.gguf",
    )
    .unwrap();
    assert_eq!(tokenizer.stop_token_ids(), vec![2, 0]);
    let from_dir = load("smollm2");
    let chat = [ChatMessage::new("user", "Hi")];
    assert_eq!(
        tokenizer.encode_chat(&chat, true, None).unwrap(),
        from_dir.encode_chat(&chat, true, None).unwrap()
    );

    let message = Tokenizer::from_json_strings(&tokenizer_json, Some("{"), None, "model.gguf")
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with("model.gguf (tokenizer_config.json): not valid JSON"),
        "{message}"
    );
    let message = Tokenizer::from_json_strings("[]", None, None, "model.gguf")
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with("model.gguf (tokenizer.json): not a usable tokenizer.json"),
        "{message}"
    );
}

#[test]
fn template_errors_on_odd_input_are_errors_not_panics() {
    // Qwen3's template reads messages[0].role: with no messages Jinja2 raises UndefinedError too.
    let qwen = load("qwen3");
    let err = qwen.apply_chat_template(&[], true, None).unwrap_err();
    assert!(
        matches!(err, TokenizerError::TemplateRender { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("tokenizer_config.json") && !message.contains('\n'),
        "{message}"
    );
    // Empty content and unusual roles render.
    let odd = [
        ChatMessage::new("user", ""),
        ChatMessage::new("narrator", "…"),
    ];
    for name in ["smollm2", "qwen3", "llama3"] {
        load(name)
            .encode_chat(&odd, true, None)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
