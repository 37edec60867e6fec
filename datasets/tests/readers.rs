//! Readers: gzip, Parquet = JSONL, bad input with locations, skip-and-count, templates, command.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Parser;
use parquet::data_type::{ByteArray, ByteArrayType};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use r1kit_datasets::command::run_data_to;
use r1kit_datasets::{
    ChatMessage, DataArgs, DataError, DatasetSpec, Gold, Location, PromptTemplate, Record, RenderedPrompt, SftExample, Unit,
};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("r1kit-datasets-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn load(spec: &str) -> Result<r1kit_datasets::Loaded, DataError> {
    DatasetSpec::parse(spec)?.load()
}

const QA: &str = "{\"question\": \"1+1?\", \"answer\": \"2\"}\n{\"question\": \"2+3?\", \"answer\": 5}\n\n{\"question\": \"9-4?\", \"answer\": \"5\"}\n";

#[test]
fn jsonl_with_field_mapping_plain_and_gzip() {
    let dir = temp_dir("gz");
    let plain = dir.join("qa.jsonl");
    let packed = dir.join("qa.jsonl.gz");
    write(&plain, QA);
    std::fs::write(&packed, gzip(QA.as_bytes())).unwrap();
    let spec = |p: &Path| format!("jsonl:{}?prompt_field=question&answer_field=answer", p.display());
    let a = load(&spec(&plain)).unwrap().records;
    let b = load(&spec(&packed)).unwrap().records;
    assert_eq!(a.len(), 3, "the blank line is skipped");
    assert_eq!(a, b);
    let Record::Rl(second) = &a[1] else { panic!() };
    assert_eq!(second.prompt, "2+3?");
    assert_eq!(second.gold, Gold::Answer { answer: "5".into() }, "numeric answers become text");
}

#[test]
fn truncated_gzip_is_a_read_error_with_its_line() {
    let dir = temp_dir("trunc");
    let path = dir.join("big.jsonl.gz");
    let text: String = (0..2000).map(|i| format!("{{\"prompt\": \"problem {i} {}\", \"answer\": \"{i}\"}}\n", "x".repeat(i % 50))).collect();
    let packed = gzip(text.as_bytes());
    std::fs::write(&path, &packed[..packed.len() / 2]).unwrap();
    let err = load(&path.display().to_string()).unwrap_err();
    assert!(matches!(err, DataError::Read { .. }), "{err}");
    let Some(Location { unit: Unit::Line(line), .. }) = err.location() else { panic!("{err}") };
    assert!(*line > 100 && *line < 2000, "line {line}");
    let message = err.to_string();
    assert!(message.contains("big.jsonl.gz:") && message.contains("truncated"), "{message}");
    // Skipping cannot go past a broken stream: still an error.
    assert!(load(&format!("{}?on_error=skip", path.display())).is_err());
}

#[test]
fn bad_lines_name_file_line_and_field() {
    let dir = temp_dir("bad");
    let cases = [
        ("not_json.jsonl", "{\"prompt\": \"a\", \"answer\": \"1\"}\n{\"prompt\": \"b\", answer: 2}\n", 2, None, "not valid JSON"),
        ("missing.jsonl", "{\"prompt\": \"a\", \"answer\": \"1\"}\n{\"prompt\": \"b\", \"answer\": \"2\"}\n{\"prompt\": \"c\"}\n", 3, Some("answer"), "missing field `answer`"),
        ("wrong_type.jsonl", "{\"prompt\": \"a\", \"answer\": \"1\"}\n{\"prompt\": [\"b\"], \"answer\": \"2\"}\n", 2, Some("prompt"), "should be a string, found a list"),
        ("bad_answer.jsonl", "{\"prompt\": \"a\", \"answer\": {\"x\": 1}}\n", 1, Some("answer"), "found an object"),
    ];
    for (name, text, line, field, message) in cases {
        let path = dir.join(name);
        write(&path, text);
        let err = load(&path.display().to_string()).unwrap_err();
        let shown = err.to_string();
        assert!(shown.starts_with(&format!("{}:{line}:", path.display())), "{shown}");
        assert!(shown.contains(message), "{shown}");
        if let Some(field) = field {
            assert!(shown.contains(&format!("`{field}`")), "{shown}");
        }
        // With on_error=skip the bad record is counted and the rest loads.
        let loaded = load(&format!("{}?on_error=skip", path.display())).unwrap();
        assert_eq!(loaded.skipped, 1, "{name}");
        assert_eq!(loaded.records.len(), text.lines().count() - 1, "{name}");
        assert!(loaded.skip_examples[0].contains(&format!(":{line}:")));
    }
}

#[test]
fn gsm8k_style_answer_without_hashes_is_a_bad_value() {
    let dir = temp_dir("hashes");
    let path = dir.join("g.jsonl");
    write(&path, "{\"question\": \"q\", \"answer\": \"so 4\\n#### 1,234\"}\n{\"question\": \"q2\", \"answer\": \"no marker\"}\n");
    let spec = format!("jsonl:{}?prompt_field=question&answer=hashes", path.display());
    let err = load(&spec).unwrap_err().to_string();
    assert!(err.contains("g.jsonl:2: field `answer`: no `####`"), "{err}");
    let loaded = load(&format!("{spec}&on_error=skip")).unwrap();
    let Record::Rl(first) = &loaded.records[0] else { panic!() };
    assert_eq!(first.gold, Gold::Answer { answer: "1234".into() });
}

#[test]
fn boxed_answers_are_extracted_with_nested_braces() {
    use r1kit_datasets::mapping::last_boxed;
    assert_eq!(last_boxed("so \\boxed{1} then \\boxed{\\frac{1}{2}}.").as_deref(), Some("\\frac{1}{2}"));
    assert_eq!(last_boxed("no box"), None);
    assert_eq!(last_boxed("\\boxed{unclosed"), None);
}

/// Writes rows of string columns to Parquet with the crate's low-level writer.
fn write_parquet(path: &Path, columns: &[&str], rows: &[Vec<String>]) {
    let fields: String = columns.iter().map(|c| format!("REQUIRED BYTE_ARRAY {c} (UTF8);")).collect();
    let schema = Arc::new(parse_message_type(&format!("message record {{ {fields} }}")).unwrap());
    let file = std::fs::File::create(path).unwrap();
    let mut writer = SerializedFileWriter::new(file, schema, Arc::new(WriterProperties::builder().build())).unwrap();
    let mut group = writer.next_row_group().unwrap();
    for c in 0..columns.len() {
        let values: Vec<ByteArray> = rows.iter().map(|r| ByteArray::from(r[c].as_str())).collect();
        let mut column = group.next_column().unwrap().unwrap();
        column.typed::<ByteArrayType>().write_batch(&values, None, None).unwrap();
        column.close().unwrap();
    }
    group.close().unwrap();
    writer.close().unwrap();
}

#[test]
fn parquet_and_jsonl_give_the_same_records() {
    let dir = temp_dir("parquet");
    let rows: Vec<Vec<String>> = (0..50)
        .map(|i| vec![format!("id-{i}"), format!("What is {i} * 3? \"quoted\" ünïcode"), (i * 3).to_string()])
        .collect();
    let parquet_path = dir.join("data.parquet");
    write_parquet(&parquet_path, &["uid", "question", "answer"], &rows);
    let jsonl_path = dir.join("data.jsonl");
    let jsonl: String = rows
        .iter()
        .map(|r| serde_json::json!({"uid": r[0], "question": r[1], "answer": r[2]}).to_string() + "\n")
        .collect();
    write(&jsonl_path, &jsonl);
    let options = "?prompt_field=question&id_field=uid";
    let from_parquet = load(&format!("{}{options}", parquet_path.display())).unwrap().records;
    let from_jsonl = load(&format!("{}{options}", jsonl_path.display())).unwrap().records;
    assert_eq!(from_parquet.len(), 50);
    assert_eq!(from_parquet, from_jsonl);
    let Record::Rl(p) = &from_parquet[7] else { panic!() };
    assert_eq!((p.id.as_str(), p.gold.answer_text().unwrap().as_str()), ("id-7", "21"));

    // A missing field in Parquet names the row.
    let err = load(&format!("{}?prompt_field=nope", parquet_path.display())).unwrap_err().to_string();
    assert!(err.contains("data.parquet: row 0: missing field `nope`"), "{err}");
    // Not a Parquet file.
    let fake = dir.join("fake.parquet");
    write(&fake, "hello");
    assert!(load(&fake.display().to_string()).unwrap_err().to_string().contains("fake.parquet: parquet"));
}

#[test]
fn sft_chat_and_trace_records_are_inferred_from_fields() {
    let dir = temp_dir("kinds");
    let chat = dir.join("chat.jsonl");
    write(&chat, "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"hello\"}]}\n{\"messages\": [{\"role\": \"user\"}]}\n");
    let err = load(&chat.display().to_string()).unwrap_err().to_string();
    assert!(err.contains("chat.jsonl:2: missing field `messages[0].content`"), "{err}");
    let loaded = load(&format!("{}?on_error=skip", chat.display())).unwrap();
    assert_eq!(
        loaded.records,
        [Record::Sft(SftExample::Chat { messages: vec![ChatMessage::user("hi"), ChatMessage::assistant("hello")] })]
    );
    let traces = dir.join("traces.jsonl");
    write(&traces, "{\"prompt\": \"p\", \"reasoning\": \"1+1=2\", \"answer\": \"2\"}\n");
    let Record::Trace(t) = &load(&traces.display().to_string()).unwrap().records[0] else { panic!() };
    assert_eq!(t.r1_completion(), "<think>\n1+1=2\n</think>\n<answer>2</answer>");
}

#[test]
fn templates_render_and_deserialize_from_config() {
    let r1: PromptTemplate = serde_json::from_str("\"r1-zero\"").unwrap();
    let RenderedPrompt::Text(text) = r1.render_prompt("What is 2+2?") else { panic!() };
    assert!(text.contains("<think> </think> and <answer> </answer>") && text.ends_with("User: What is 2+2?\nAssistant:"));
    let prefill: PromptTemplate = serde_json::from_str(r#"{"kind": "r1-zero", "prefill_think": true}"#).unwrap();
    let RenderedPrompt::Text(text) = prefill.render_prompt("q") else { panic!() };
    assert!(text.ends_with("Assistant: <think>"));
    assert_eq!(prefill.assistant_prefill(), "<think>");
    let trace = r1kit_datasets::ReasoningTrace { id: "t".into(), prompt: "q".into(), reasoning: "r".into(), answer: "a".into(), correct: None };
    // Prompt + completion is the same text with or without prefill.
    let joined = |t: &PromptTemplate| match t.render_prompt("q") {
        RenderedPrompt::Text(p) => p + &t.trace_completion(&trace),
        _ => unreachable!(),
    };
    assert_eq!(joined(&r1), joined(&prefill));
    let chat: PromptTemplate = serde_json::from_str(r#"{"kind": "chat", "system": "Be brief."}"#).unwrap();
    assert_eq!(chat.render_prompt("q"), RenderedPrompt::Chat(vec![ChatMessage::system("Be brief."), ChatMessage::user("q")]));
    let plain: PromptTemplate = serde_json::from_str(r#"{"kind": "plain", "format": "Q: {prompt}\nA:"}"#).unwrap();
    assert_eq!(plain.render_prompt("q"), RenderedPrompt::Text("Q: q\nA:".into()));
    assert!(serde_json::from_str::<PromptTemplate>(r#"{"kind": "plain", "format": "no slot"}"#).is_err());
    assert!(serde_json::from_str::<PromptTemplate>("\"nope\"").is_err());
}

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    data: Top,
}

#[derive(clap::Subcommand)]
enum Top {
    Data(DataArgs),
}

fn run(args: &[&str]) -> anyhow::Result<String> {
    let Cli { data: Top::Data(args) } = Cli::try_parse_from(std::iter::once("r1kit").chain(args.iter().copied()))?;
    let mut out = Vec::new();
    run_data_to(&args, &mut out)?;
    Ok(String::from_utf8(out).unwrap())
}

#[test]
fn data_gen_writes_jsonl_that_data_show_reads_back() {
    let dir = temp_dir("cmd");
    let prompts = dir.join("countdown.jsonl");
    let report = run(&["data", "gen", "countdown", "--n", "20", "--seed", "1", "--out", prompts.to_str().unwrap()]).unwrap();
    assert!(report.contains("wrote 20 countdown prompts"), "{report}");
    let records = load(&prompts.display().to_string()).unwrap().records;
    assert_eq!(records.len(), 20);
    let Record::Rl(first) = &records[0] else { panic!() };
    let Gold::Countdown { numbers, target } = &first.gold else { panic!("{first:?}") };
    r1kit_datasets::check_countdown(first.solution.as_deref().unwrap(), numbers, *target, true).unwrap();

    let traces = dir.join("traces.jsonl.gz");
    run(&["data", "gen", "arithmetic", "--n", "50", "--traces", "--error-rate", "0.2", "-o", "digits=3", "--out", traces.to_str().unwrap()]).unwrap();
    let shown = run(&["data", "show", "--dataset", traces.to_str().unwrap(), "--n", "2", "--template", "r1-zero"]).unwrap();
    assert_eq!(shown.matches("--- completion ---\n <think>\n").count(), 2, "{shown}");

    let shown = run(&["data", "show", "--dataset", "countdown:n=5,count=3", "--template", "chat", "--system", "S"]).unwrap();
    assert_eq!(shown.matches("[system]\nS\n[user]\nUsing the numbers").count(), 3, "{shown}");
    assert!(run(&["data", "gen", "nope", "--out", "x.jsonl"]).is_err());
    assert!(run(&["data", "show", "--dataset", "countdown:bogus=1"]).is_err());
}

#[test]
fn data_show_prints_real_sets_through_the_template() {
    let shown = run(&["data", "show", "--dataset", "gsm8k", "--n", "1"]).unwrap();
    assert!(shown.contains("User: Janet’s ducks lay 16 eggs") && shown.contains("--- gold ---\n18\n"), "{shown}");
    let shown = run(&["data", "show", "--dataset", "humaneval-rust", "--n", "1", "--template", "plain"]).unwrap();
    assert!(shown.contains("fn has_close_elements") && shown.contains("Rust tests of `has_close_elements`"), "{shown}");
    let shown = run(&["data", "show", "--dataset", "word:n=2,seed=3,traces=true,style=verbose", "--n", "2", "--template", "r1-zero-prefill"]).unwrap();
    assert_eq!(shown.matches("Assistant: <think>\n--- completion ---\n\nFirst, ").count(), 2, "{shown}");
}

#[test]
fn epochs_visit_every_item_once_per_epoch_in_a_new_order() {
    let items: Vec<u32> = (0..100).collect();
    let mut epochs = r1kit_datasets::Epochs::new(&items, 9);
    let first: Vec<u32> = epochs.by_ref().take(100).copied().collect();
    let second: Vec<u32> = epochs.by_ref().take(100).copied().collect();
    assert_eq!(epochs.epoch(), 1);
    for epoch in [&first, &second] {
        let mut sorted = epoch.clone();
        sorted.sort();
        assert_eq!(sorted, items);
    }
    assert_ne!(first, second);
    assert_ne!(first, items);
    let again: Vec<u32> = r1kit_datasets::Epochs::new(&items, 9).take(100).copied().collect();
    assert_eq!(first, again);
}

#[test]
fn dedup_drops_repeats_that_differ_only_in_case_and_spacing() {
    let dir = temp_dir("dedup");
    let path = dir.join("d.jsonl");
    write(&path, "{\"prompt\": \"What is  2+2?\", \"answer\": \"4\"}\n{\"prompt\": \"what is 2+2?\", \"answer\": \"4\"}\n{\"prompt\": \"What is 3+3?\", \"answer\": \"6\"}\n");
    assert_eq!(load(&path.display().to_string()).unwrap().records.len(), 3);
    let records = load(&format!("{}?dedup=true", path.display())).unwrap().records;
    assert_eq!(records.iter().map(|r| r.prompt_text()).collect::<Vec<_>>(), ["What is  2+2?", "What is 3+3?"]);
}
