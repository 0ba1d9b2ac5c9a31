//! Tool calls (issue 16): `tools`, `tool_choice` and `parallel_tool_calls` validated; the tools and any
//! earlier calls and results rendered into the chat in gonka's documented format (`docs/api.md`, "Tool
//! calls"), since SmolLM2's template has no tools section; a call that `tool_choice` forces constrained by
//! a grammar built from the functions' parameter schemas; the answer's text parsed back into calls.
//!
//! The format: the tools are listed in a system message, one JSON object per line; the model calls them
//! with one line per call, `<tool_call>{"name": …, "arguments": {…}}</tool_call>`; a result comes back in
//! a `tool` message as `<tool_response>…</tool_response>`.

use std::fmt::Write as _;

use gonka_engine_api::{ChatMessage, OutputGrammar};
use serde_json::{Value, json};

use crate::ApiError;

/// Most tools one request may declare.
const TOOLS_MAX: usize = 128;
/// Largest grammar of calls the tools may make (a `response_format` schema has the same bound).
const GRAMMAR_BYTES_MAX: usize = 64 * 1024;
/// Longest function name (OpenAI's limit).
const NAME_MAX: usize = 64;
/// Where a call's JSON starts and ends in the model's text.
pub(crate) const CALL_OPEN: &str = "<tool_call>";
pub(crate) const CALL_CLOSE: &str = "</tool_call>";

/// One declared function.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tool {
    name: String,
    description: Option<String>,
    parameters: Value,
}

/// What `tool_choice` asks of the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ToolChoice {
    /// Answer in text; tools may still be described.
    None,
    /// The model decides; its text is parsed for calls.
    Auto,
    /// At least one call, of any tool.
    Required,
    /// A call of this function.
    Named(String),
}

/// A request's tools, validated.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolPlan {
    tools: Vec<Tool>,
    pub(crate) choice: ToolChoice,
    parallel: bool,
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= NAME_MAX
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl ToolPlan {
    /// `tools` (an array of `{"type": "function", "function": {"name", "description", "parameters"}}`),
    /// `tool_choice` and `parallel_tool_calls`; `None` when no tools are declared (then only `none` and
    /// `auto` make sense as a choice).
    pub(crate) fn validate(
        tools: Option<Value>,
        choice: Option<Value>,
        parallel: Option<bool>,
    ) -> Result<Option<ToolPlan>, ApiError> {
        let tools = match tools {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(tools)) => tools,
            Some(_) => return Err(ApiError::invalid("tools", "`tools` must be an array.")),
        };
        if tools.len() > TOOLS_MAX {
            return Err(ApiError::invalid("tools", format!("At most {TOOLS_MAX} tools are accepted.")));
        }
        let mut declared: Vec<Tool> = Vec::with_capacity(tools.len());
        for (index, tool) in tools.into_iter().enumerate() {
            let tool = parse_tool(index, &tool)?;
            if declared.iter().any(|other| other.name == tool.name) {
                return Err(ApiError::invalid(
                    format!("tools[{index}].function.name"),
                    format!("Two tools are named `{}`.", tool.name),
                ));
            }
            declared.push(tool);
        }
        let choice = match choice {
            None | Some(Value::Null) => ToolChoice::Auto,
            Some(Value::String(choice)) => match choice.as_str() {
                "none" => ToolChoice::None,
                "auto" => ToolChoice::Auto,
                "required" => ToolChoice::Required,
                _ => {
                    return Err(ApiError::invalid(
                        "tool_choice",
                        "`tool_choice` must be `none`, `auto`, `required` or a named function.",
                    ));
                }
            },
            Some(Value::Object(choice)) => {
                let name = choice
                    .get("function")
                    .and_then(|function| function.get("name"))
                    .and_then(Value::as_str)
                    .filter(|_| choice.get("type").and_then(Value::as_str) == Some("function"));
                let Some(name) = name else {
                    return Err(ApiError::invalid(
                        "tool_choice",
                        "A named `tool_choice` is `{\"type\": \"function\", \"function\": {\"name\": …}}`.",
                    ));
                };
                if !declared.iter().any(|tool| tool.name == name) {
                    return Err(ApiError::invalid(
                        "tool_choice",
                        format!("`tool_choice` names `{name}`, which is not among the `tools`."),
                    ));
                }
                ToolChoice::Named(name.to_owned())
            }
            Some(_) => {
                return Err(ApiError::invalid("tool_choice", "`tool_choice` must be a string or an object."));
            }
        };
        if declared.is_empty() {
            return match choice {
                ToolChoice::None | ToolChoice::Auto => Ok(None),
                _ => Err(ApiError::invalid(
                    "tool_choice",
                    "`tool_choice` asks for a call, but no `tools` are declared.",
                )),
            };
        }
        let plan = ToolPlan { tools: declared, choice, parallel: parallel.unwrap_or(true) };
        let bytes = plan.grammar_bytes();
        if bytes > GRAMMAR_BYTES_MAX {
            return Err(ApiError::invalid(
                "tools",
                format!(
                    "The tools' schemas make a grammar of {bytes} bytes; at most {GRAMMAR_BYTES_MAX} are accepted."
                ),
            ));
        }
        Ok(Some(plan))
    }

    /// The system message that describes the tools and how to call them.
    pub(crate) fn system_prompt(&self) -> String {
        let mut prompt = String::from(
            "You can call functions. Each one below is a JSON object with its name, description and \
             parameters (a JSON Schema):\n",
        );
        for tool in &self.tools {
            let mut entry = json!({"name": tool.name});
            if let Some(description) = &tool.description {
                entry["description"] = json!(description);
            }
            entry["parameters"] = tool.parameters.clone();
            prompt.push_str(&entry.to_string());
            prompt.push('\n');
        }
        prompt.push_str(
            "To call a function, answer with one line per call and nothing else, each line as:\n\
             <tool_call>{\"name\": \"function_name\", \"arguments\": {\"parameter\": \"value\"}}</tool_call>\n\
             The results come back in tool messages; then answer the user.",
        );
        prompt
    }

    /// The messages with the tools' description added to the system message (or as a first one).
    pub(crate) fn render(&self, mut messages: Vec<ChatMessage>) -> Vec<ChatMessage> {
        let prompt = self.system_prompt();
        match messages.first_mut() {
            Some(first) if first.role == "system" => {
                first.content = format!("{}\n\n{prompt}", first.content);
            }
            _ => messages.insert(0, ChatMessage { role: "system".into(), content: prompt }),
        }
        messages
    }

    /// What the answer must be, when `tool_choice` forces a call: one call (or several lines of calls
    /// with `parallel_tool_calls`) of the allowed functions, each with arguments that match the
    /// function's parameter schema.
    pub(crate) fn grammar(&self) -> Option<OutputGrammar> {
        match &self.choice {
            ToolChoice::None | ToolChoice::Auto => None,
            ToolChoice::Required => Some(self.calls_grammar(None)),
            ToolChoice::Named(name) => Some(self.calls_grammar(Some(name))),
        }
    }

    /// The grammar of calls of every tool: compiling it checks every parameter schema, whatever the
    /// choice.
    pub(crate) fn check_grammar(&self) -> OutputGrammar {
        self.calls_grammar(None)
    }

    fn calls_grammar(&self, only: Option<&str>) -> OutputGrammar {
        // One `%json` document per function: its parameters' `$defs` (and `definitions`) move to the
        // document's top, where their `#/$defs/…` references point.
        let rules: Vec<(String, Value)> = self
            .tools
            .iter()
            .filter(|tool| only.is_none_or(|name| name == tool.name))
            .enumerate()
            .map(|(index, tool)| {
                let mut arguments = tool.parameters.clone();
                let mut call = json!({
                    "type": "object",
                    "required": ["name", "arguments"],
                    "additionalProperties": false,
                    "x-guidance": {"whitespace_flexible": false, "item_separator": ", ", "key_separator": ": "},
                });
                if let (Some(arguments), Some(call)) = (arguments.as_object_mut(), call.as_object_mut()) {
                    for key in ["$defs", "definitions"] {
                        if let Some(definitions) = arguments.remove(key) {
                            call.insert(key.to_owned(), definitions);
                        }
                    }
                }
                call["properties"] = json!({"name": {"const": tool.name}, "arguments": arguments});
                (format!("call_{index}"), call)
            })
            .collect();
        let names: Vec<&str> = rules.iter().map(|(name, _)| name.as_str()).collect();
        let repeat = if self.parallel { " (\"\\n\" call)*" } else { "" };
        let mut lark = format!(
            "start: call{repeat}\ncall: \"{CALL_OPEN}\" body \"{CALL_CLOSE}\"\nbody: {}\n",
            names.join(" | ")
        );
        for (name, schema) in &rules {
            let _ = writeln!(lark, "{name}: %json {schema}");
        }
        OutputGrammar::Lark(lark)
    }

    /// Bytes of the grammar of calls of every tool (bounded like a `response_format` schema).
    fn grammar_bytes(&self) -> usize {
        match self.check_grammar() {
            OutputGrammar::Lark(text) | OutputGrammar::JsonSchema(text) => text.len(),
        }
    }
}

fn parse_tool(index: usize, tool: &Value) -> Result<Tool, ApiError> {
    let param = |field: &str| format!("tools[{index}]{field}");
    if tool.get("type").and_then(Value::as_str) != Some("function") {
        return Err(ApiError::invalid(param(".type"), "Only tools of type `function` are supported."));
    }
    let Some(function) = tool.get("function").and_then(Value::as_object) else {
        return Err(ApiError::invalid(param(".function"), "A tool needs a `function` object."));
    };
    let name = function.get("name").and_then(Value::as_str).unwrap_or_default();
    if !is_name(name) {
        return Err(ApiError::invalid(
            param(".function.name"),
            format!("A function name is 1 to {NAME_MAX} letters, digits, `_` or `-`."),
        ));
    }
    let description = match function.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(description)) => Some(description.clone()),
        Some(_) => {
            return Err(ApiError::invalid(param(".function.description"), "`description` must be a string."));
        }
    };
    let parameters = match function.get("parameters") {
        None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
        Some(parameters @ Value::Object(_)) => {
            if parameters.get("type").is_some_and(|kind| kind != "object") {
                return Err(ApiError::invalid(
                    param(".function.parameters"),
                    "A function's parameters are a JSON Schema of `type` `object`.",
                ));
            }
            parameters.clone()
        }
        Some(_) => {
            return Err(ApiError::invalid(
                param(".function.parameters"),
                "`parameters` must be a JSON Schema object.",
            ));
        }
    };
    Ok(Tool { name: name.to_owned(), description, parameters })
}

/// An assistant message's `tool_calls`, as the text the model would have written for them.
pub(crate) fn render_calls(index: usize, calls: &Value) -> Result<String, ApiError> {
    let param = format!("messages[{index}].tool_calls");
    let Some(calls) = calls.as_array() else {
        return Err(ApiError::invalid(param, "`tool_calls` must be an array."));
    };
    let mut lines = Vec::with_capacity(calls.len());
    for call in calls {
        let function = call.get("function");
        let name = function.and_then(|f| f.get("name")).and_then(Value::as_str).filter(|n| is_name(n));
        let arguments = function.and_then(|f| f.get("arguments")).and_then(Value::as_str);
        let (Some(name), Some(arguments)) = (name, arguments) else {
            return Err(ApiError::invalid(
                param,
                "Each tool call needs `function.name` and `function.arguments` (a JSON string).",
            ));
        };
        let Ok(arguments @ Value::Object(_)) = serde_json::from_str::<Value>(arguments) else {
            return Err(ApiError::invalid(
                param,
                format!("The arguments of the call of `{name}` are not a JSON object."),
            ));
        };
        let call = json!({"name": name, "arguments": arguments});
        lines.push(format!("{CALL_OPEN}{}{CALL_CLOSE}", layout(&call)));
    }
    Ok(lines.join("\n"))
}

/// JSON in the layout the grammars write: `", "` and `": "` separators, no other whitespace.
fn layout(value: &Value) -> String {
    match value {
        Value::Array(items) => format!("[{}]", items.iter().map(layout).collect::<Vec<_>>().join(", ")),
        Value::Object(fields) => {
            let fields: Vec<String> = fields
                .iter()
                .map(|(key, value)| format!("{}: {}", Value::from(key.as_str()), layout(value)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
        scalar => scalar.to_string(),
    }
}

/// A `tool` message's content, as the model reads a result.
pub(crate) fn render_result(content: &str) -> String {
    format!("<tool_response>{content}</tool_response>")
}

/// A piece of an answer with tools, in the order the client receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    /// Text outside calls.
    Content(String),
    /// A call begins: its index among the answer's calls, id and function name.
    CallStart { index: usize, id: String, name: String },
    /// More of a call's arguments (JSON text; the fragments concatenate to the arguments).
    CallArguments { index: usize, fragment: String },
}

/// Splits an answer's text, as it streams, into content and calls. Text outside `<tool_call>` blocks is
/// content (a possible start of a block held back until it is known); a block that parses as a call of a
/// declared function becomes a call, any other block content. With a forced call (the grammar guarantees
/// the layout `{"name": "…", "arguments": {…}}`) the call's name and argument fragments stream as they
/// are generated; otherwise a call is released whole when its block closes. A streamed and a collected
/// answer go through this one splitter, so both give the same calls.
pub(crate) struct CallSplitter {
    plan: ToolPlan,
    id_prefix: String,
    /// Text not yet released: a possible block start, or the block being read.
    pending: String,
    in_call: bool,
    calls: usize,
    /// Forced calls: the bytes of `pending` already released as arguments, once the name has been.
    streamed: Option<usize>,
}

/// What a forced call's text begins with before its arguments.
fn forced_head(block: &str) -> Option<(&str, usize)> {
    let rest = block.strip_prefix("{\"name\": \"")?;
    let end = rest.find('"')?;
    let name = &rest[..end];
    let args = rest[end..].strip_prefix("\", \"arguments\": ")?;
    Some((name, block.len() - args.len()))
}

impl CallSplitter {
    /// A splitter for one answer; call ids are `call_{id_prefix}_{index}`.
    pub(crate) fn new(plan: ToolPlan, id_prefix: &str) -> Self {
        Self {
            plan,
            id_prefix: id_prefix.to_owned(),
            pending: String::new(),
            in_call: false,
            calls: 0,
            streamed: None,
        }
    }

    /// Whether calls are parsed at all (`tool_choice` other than `none`).
    fn active(&self) -> bool {
        self.plan.choice != ToolChoice::None
    }

    fn forced(&self) -> bool {
        matches!(self.plan.choice, ToolChoice::Required | ToolChoice::Named(_))
    }

    /// Calls started so far.
    pub(crate) fn calls(&self) -> usize {
        self.calls
    }

    /// The pieces `text` (the next part of the answer) completes.
    pub(crate) fn push(&mut self, text: &str) -> Vec<Piece> {
        if !self.active() {
            return if text.is_empty() { Vec::new() } else { vec![Piece::Content(text.to_owned())] };
        }
        self.pending.push_str(text);
        let mut pieces = Vec::new();
        loop {
            if self.in_call {
                let Some(close) = self.pending.find(CALL_CLOSE) else {
                    self.stream_forced(&mut pieces);
                    return pieces;
                };
                let block = self.pending[..close].to_owned();
                self.pending.drain(..close + CALL_CLOSE.len());
                self.in_call = false;
                self.close_call(&block, &mut pieces);
            } else {
                match self.pending.find(CALL_OPEN) {
                    Some(open) => {
                        // Whitespace between calls separates them; it is not content.
                        let before = &self.pending[..open];
                        if self.calls == 0 || !before.trim().is_empty() {
                            push_content(&mut pieces, before);
                        }
                        self.pending.drain(..open + CALL_OPEN.len());
                        self.in_call = true;
                        self.streamed = None;
                    }
                    None => {
                        // Hold back a suffix that may be the start of `<tool_call>`.
                        let keep = (1..CALL_OPEN.len())
                            .rev()
                            .find(|&n| self.pending.ends_with(&CALL_OPEN[..n]))
                            .unwrap_or(0);
                        let release = self.pending.len() - keep;
                        // After a call, whitespace is held until something but another call follows.
                        if self.calls > 0 && self.pending[..release].trim().is_empty() {
                            return pieces;
                        }
                        push_content(&mut pieces, &self.pending[..release]);
                        self.pending.drain(..release);
                        return pieces;
                    }
                }
            }
        }
    }

    /// Everything still held, at the end of the answer: an unfinished block is content (or, for a
    /// forced call already streaming, the rest of its arguments).
    pub(crate) fn finish(&mut self) -> Vec<Piece> {
        let mut pieces = Vec::new();
        let pending = std::mem::take(&mut self.pending);
        match (self.in_call, self.streamed) {
            (true, Some(sent)) => {
                let index = self.calls - 1;
                if pending.len() > sent {
                    pieces.push(Piece::CallArguments { index, fragment: pending[sent..].to_owned() });
                }
            }
            (true, None) => push_content(&mut pieces, &format!("{CALL_OPEN}{pending}")),
            (false, _) if self.calls > 0 && pending.trim().is_empty() => {}
            (false, _) => push_content(&mut pieces, &pending),
        }
        self.in_call = false;
        pieces
    }

    /// A forced call streams: its start once the name is known, then its arguments up to the last `}`
    /// seen (which may be the one closing the call).
    fn stream_forced(&mut self, pieces: &mut Vec<Piece>) {
        if !self.forced() {
            return;
        }
        if self.streamed.is_none() {
            let Some((name, args_at)) = forced_head(&self.pending) else { return };
            let name = name.to_owned();
            self.start_call(name, pieces);
            self.streamed = Some(args_at);
        }
        let Some(sent) = self.streamed else { return };
        let safe = self.pending.rfind('}').unwrap_or(0);
        if safe > sent {
            let index = self.calls - 1;
            pieces.push(Piece::CallArguments { index, fragment: self.pending[sent..safe].to_owned() });
            self.streamed = Some(safe);
        }
    }

    fn start_call(&mut self, name: String, pieces: &mut Vec<Piece>) {
        let index = self.calls;
        self.calls += 1;
        pieces.push(Piece::CallStart { index, id: format!("call_{}_{index}", self.id_prefix), name });
    }

    fn close_call(&mut self, block: &str, pieces: &mut Vec<Piece>) {
        #[derive(serde::Deserialize)]
        #[allow(clippy::items_after_statements)]
        struct Call<'b> {
            name: String,
            #[serde(borrow)]
            arguments: &'b serde_json::value::RawValue,
        }
        let parsed = serde_json::from_str::<Call<'_>>(block.trim())
            .ok()
            .filter(|call| call.arguments.get().starts_with('{'))
            .filter(|call| self.plan.tools.iter().any(|tool| tool.name == call.name));
        match (self.streamed.take(), parsed) {
            (Some(sent), _) => {
                // A forced call: the rest of its arguments, without the `}` that closes the call.
                let index = self.calls - 1;
                let end = block.trim_end().strip_suffix('}').map_or(block.len(), str::len);
                if end > sent {
                    pieces.push(Piece::CallArguments { index, fragment: block[sent..end].to_owned() });
                }
            }
            (None, Some(call)) => {
                self.start_call(call.name, pieces);
                let index = self.calls - 1;
                pieces.push(Piece::CallArguments { index, fragment: call.arguments.get().to_owned() });
            }
            (None, None) => push_content(pieces, &format!("{CALL_OPEN}{block}{CALL_CLOSE}")),
        }
    }
}

fn push_content(pieces: &mut Vec<Piece>, text: &str) {
    if text.is_empty() {
        return;
    }
    if let Some(Piece::Content(last)) = pieces.last_mut() {
        last.push_str(text);
    } else {
        pieces.push(Piece::Content(text.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(choice: Value, parallel: bool) -> ToolPlan {
        let tools = json!([
            {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
             "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
            {"type": "function", "function": {"name": "add", "parameters": {"type": "object",
             "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}}}
        ]);
        ToolPlan::validate(Some(tools), Some(choice), Some(parallel)).expect("valid").expect("tools")
    }

    /// Splits `text` fed in pieces of `step` bytes (at char boundaries) and gathers content and calls.
    fn split(plan: &ToolPlan, text: &str, step: usize) -> (String, Vec<(String, String)>) {
        let mut splitter = CallSplitter::new(plan.clone(), "x");
        let mut pieces = Vec::new();
        let chars: Vec<char> = text.chars().collect();
        for chunk in chars.chunks(step) {
            pieces.extend(splitter.push(&chunk.iter().collect::<String>()));
        }
        pieces.extend(splitter.finish());
        let (content, calls) = super::super::response::gather(pieces);
        (content, calls.into_iter().map(|call| (call.name, call.arguments)).collect())
    }

    const TWO_CALLS: &str = "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}</tool_call>\n\
                             <tool_call>{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": {\"c\": 2}}}</tool_call>";

    #[test]
    fn calls_come_out_the_same_however_the_text_streams() {
        for choice in [json!("auto"), json!("required")] {
            let plan = plan(choice, true);
            let whole = split(&plan, TWO_CALLS, TWO_CALLS.len());
            assert_eq!(whole.0, "", "the newline between calls is no content");
            assert_eq!(
                whole.1,
                vec![
                    ("get_weather".to_owned(), "{\"city\": \"Paris\"}".to_owned()),
                    ("add".to_owned(), "{\"a\": 1, \"b\": {\"c\": 2}}".to_owned())
                ]
            );
            for step in [1, 2, 3, 7, 16] {
                assert_eq!(split(&plan, TWO_CALLS, step), whole, "step {step}");
            }
        }
    }

    #[test]
    fn text_around_calls_and_broken_calls_stay_content() {
        let plan = plan(json!("auto"), true);
        let text = "Let me check. <tool_call>{\"name\": \"nope\", \"arguments\": {}}</tool_call> <tool_c";
        for step in [1, 4, 100] {
            let (content, calls) = split(&plan, text, step);
            assert_eq!(content, text, "step {step}");
            assert!(calls.is_empty());
        }
        let (content, calls) = split(&plan, &format!("Sure.\n{TWO_CALLS}"), 5);
        assert_eq!(content.trim(), "Sure.");
        assert_eq!(calls.len(), 2);
        // With `tool_choice: none`, everything is content.
        let none =
            ToolPlan::validate(plan_tools(), Some(json!("none")), None).expect("valid").expect("tools");
        assert_eq!(split(&none, TWO_CALLS, 3).0, TWO_CALLS);
    }

    fn plan_tools() -> Option<Value> {
        Some(json!([{"type": "function", "function": {"name": "get_weather"}}]))
    }

    #[test]
    fn choices_and_tools_are_validated_naming_the_field() {
        let error = |tools: Value, choice: Value| {
            ToolPlan::validate(Some(tools), Some(choice), None)
                .expect_err("invalid")
                .error_object()
                .param
                .clone()
        };
        let one = json!([{"type": "function", "function": {"name": "f"}}]);
        assert_eq!(
            error(one.clone(), json!({"type": "function", "function": {"name": "g"}})),
            Some("tool_choice".into())
        );
        assert_eq!(error(one.clone(), json!("sometimes")), Some("tool_choice".into()));
        assert_eq!(error(json!([]), json!("required")), Some("tool_choice".into()));
        assert_eq!(
            error(json!([{"type": "function", "function": {"name": "a b"}}]), json!("auto")),
            Some("tools[0].function.name".into())
        );
        assert_eq!(
            error(
                json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]),
                json!("auto")
            ),
            Some("tools[0].function.parameters".into())
        );
        assert_eq!(error(json!([one[0], one[0]]), json!("auto")), Some("tools[1].function.name".into()));
        assert_eq!(error(json!([{"type": "retrieval"}]), json!("auto")), Some("tools[0].type".into()));
        assert!(ToolPlan::validate(None, Some(json!("none")), None).expect("valid").is_none());
    }

    #[test]
    fn forced_grammars_name_only_the_chosen_function() {
        let named = plan(json!({"type": "function", "function": {"name": "add"}}), false);
        let Some(OutputGrammar::Lark(grammar)) = named.grammar() else {
            panic!("a forced call has a grammar")
        };
        assert!(grammar.contains("\"const\":\"add\"") && !grammar.contains("get_weather"), "{grammar}");
        assert!(!grammar.contains("(\"\\n\" call)*"), "one call only without parallel calls");
        assert!(plan(json!("auto"), true).grammar().is_none());
        let Some(OutputGrammar::Lark(required)) = plan(json!("required"), true).grammar() else { panic!() };
        assert!(required.contains("get_weather") && required.contains("(\"\\n\" call)*"));
    }

    #[test]
    fn a_tools_definitions_move_to_the_top_of_its_own_document() {
        let tools = json!([{"type": "function", "function": {"name": "book", "parameters": {
            "type": "object", "properties": {"guest": {"$ref": "#/$defs/Guest"}}, "required": ["guest"],
            "$defs": {"Guest": {"type": "object", "properties": {"name": {"type": "string"}}}}}}}]);
        let plan = ToolPlan::validate(Some(tools), Some(json!("required")), Some(false))
            .expect("valid")
            .expect("tools");
        let Some(OutputGrammar::Lark(grammar)) = plan.grammar() else { panic!("forced") };
        let document =
            grammar.lines().find_map(|line| line.strip_prefix("call_0: %json ")).expect("a document");
        let document: Value = serde_json::from_str(document).expect("JSON");
        assert!(document["$defs"]["Guest"].is_object(), "{document}");
        assert!(document["properties"]["arguments"].get("$defs").is_none());
    }

    #[test]
    fn history_calls_render_in_the_models_layout() {
        let calls = json!([{"id": "c1", "type": "function", "function": {"name": "add", "arguments": "{\"a\":1,\"b\":2}"}}]);
        assert_eq!(
            render_calls(0, &calls).expect("valid"),
            "<tool_call>{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}</tool_call>"
        );
        let bad = json!([{"function": {"name": "add", "arguments": "[1]"}}]);
        assert_eq!(
            render_calls(3, &bad).expect_err("invalid").error_object().param,
            Some("messages[3].tool_calls".into())
        );
    }
}
