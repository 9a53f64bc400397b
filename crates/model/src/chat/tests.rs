//! Chat templates of real models rendered as Python's jinja2 renders them under transformers,
//! plus the Python string methods, loop controls, `tojson` and errors they rely on.

use super::*;

/// `tokenizer.chat_template` of SmolLM2-135M-Instruct.Q4_1.gguf, verbatim.
const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// Meta-Llama-3-Instruct's template.
const LLAMA3: &str = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

/// Llama-2-chat's template (Mistral's is the same shape): `[INST]` turns, `.strip()`, and
/// `raise_exception` when roles do not alternate.
const LLAMA2: &str = "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

/// Qwen2.5-Instruct's template: multi-line, so it exercises `trim_blocks`/`lstrip_blocks`
/// and `{%-` whitespace control; inserts a default system prompt.
const QWEN2: &str = r##"{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"##;

// Expected strings below were produced by Python's jinja2 configured as transformers
// configures it (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols,
// its `tojson` and `raise_exception`).

fn system_and_user() -> Vec<ChatMessage> {
    vec![
        ChatMessage::new("system", "You are a terse assistant."),
        ChatMessage::new("user", "What is the capital of France?"),
    ]
}

fn user_only() -> Vec<ChatMessage> {
    vec![ChatMessage::new("user", "What is the capital of France?")]
}

fn conversation() -> Vec<ChatMessage> {
    vec![
        ChatMessage::new("system", "  Be brief.  "),
        ChatMessage::new("user", " Hi! "),
        ChatMessage::new("assistant", " Hello. How can I help? "),
        ChatMessage::new("user", "Name a colour."),
    ]
}

fn smollm2() -> ChatTemplate {
    ChatTemplate::new(SMOLLM2, "<|im_start|>", "<|im_end|>").unwrap()
}

#[test]
fn smollm2_with_system_prompt() {
    assert_eq!(
        smollm2().apply(&system_and_user(), true).unwrap(),
        "<|im_start|>system\nYou are a terse assistant.<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn smollm2_inserts_its_default_system_prompt() {
    let template = smollm2();
    assert_eq!(
        template.apply(&user_only(), true).unwrap(),
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(
        template.apply(&user_only(), false).unwrap(),
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
    );
}

#[test]
fn llama3_trims_content_and_starts_with_bos() {
    let template = ChatTemplate::new(LLAMA3, "<|begin_of_text|>", "<|eot_id|>").unwrap();
    assert_eq!(
        template.apply(&conversation(), true).unwrap(),
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello. How can I help?<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nName a colour.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    );
}

#[test]
fn qwen2_with_and_without_system_prompt() {
    let template = ChatTemplate::new(QWEN2, "", "<|im_end|>").unwrap();
    assert_eq!(
        template.apply(&system_and_user(), true).unwrap(),
        "<|im_start|>system\nYou are a terse assistant.<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(
        template.apply(&user_only(), true).unwrap(),
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(
        template.apply(&conversation(), false).unwrap(),
        "<|im_start|>system\n  Be brief.  <|im_end|>\n<|im_start|>user\n Hi! <|im_end|>\n<|im_start|>assistant\n Hello. How can I help? <|im_end|>\n<|im_start|>user\nName a colour.<|im_end|>\n"
    );
}

#[test]
fn llama2_inst_format() {
    let template = ChatTemplate::new(LLAMA2, "<s>", "</s>").unwrap();
    assert_eq!(
        template.apply(&conversation(), false).unwrap(),
        "<s>[INST] <<SYS>>\n  Be brief.  \n<</SYS>>\n\n Hi! [/INST] Hello. How can I help? </s><s>[INST] Name a colour. [/INST]"
    );
    assert_eq!(
        template.apply(&conversation()[1..], false).unwrap(),
        "<s>[INST] Hi! [/INST] Hello. How can I help? </s><s>[INST] Name a colour. [/INST]"
    );
}

#[test]
fn raise_exception_is_a_clear_error() {
    let template = ChatTemplate::new(LLAMA2, "<s>", "</s>").unwrap();
    let messages = conversation();
    let swapped = [
        messages[0].clone(),
        messages[2].clone(),
        messages[1].clone(),
    ];
    let err = template.apply(&swapped, true).unwrap_err();
    assert!(
        matches!(&err, ChatTemplateError::Rejected(m)
            if m == "Conversation roles must alternate user/assistant/user/assistant/..."),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "chat template rejected the conversation: Conversation roles must alternate user/assistant/user/assistant/..."
    );
}

#[test]
fn python_methods_loop_controls_and_tojson() {
    let source = "{%- for message in messages %}\n{%- if message.content.startswith('skip') %}{% continue %}{% endif %}\n{{ message.role.upper() }}: {{ message.content.split(' ') | join('|') }}\n{% endfor %}\n{{- messages | tojson }}\n{{ messages[0] | tojson(indent=2) }}\n{% if add_generation_prompt %}{{ 'go' }}{% endif %}\n";
    let template = ChatTemplate::new(source, "", "").unwrap();
    let messages = [
        ChatMessage::new("user", "héllo wörld \"q\" \\ tab\there"),
        ChatMessage::new("assistant", "skip me"),
        ChatMessage::new("user", "a b  c"),
    ];
    assert_eq!(
        template.apply(&messages, true).unwrap(),
        "USER: héllo|wörld|\"q\"|\\|tab\there\nUSER: a|b||c\n[{\"role\": \"user\", \"content\": \"héllo wörld \\\"q\\\" \\\\ tab\\there\"}, {\"role\": \"assistant\", \"content\": \"skip me\"}, {\"role\": \"user\", \"content\": \"a b  c\"}]\n{\n  \"role\": \"user\",\n  \"content\": \"héllo wörld \\\"q\\\" \\\\ tab\\there\"\n}\ngo"
    );
}

#[test]
fn tojson_options_match_python() {
    let template = ChatTemplate::new(
        "{{ {'b': [1, 2.5, none, true], 'a': 'é\u{1}'} | tojson(sort_keys=true, ensure_ascii=true) }}|{{ [1e20, 1e-5, 0.1] | tojson(separators=[',', ':']) }}|{{ [] | tojson(indent=2) }}",
        "",
        "",
    )
    .unwrap();
    // json.dumps({'b': [1, 2.5, None, True], 'a': 'é\x01'}, sort_keys=True, ensure_ascii=True)
    // + '|' + json.dumps([1e20, 1e-5, 0.1], separators=(',', ':')) + '|' + json.dumps([], indent=2)
    assert_eq!(
        template.apply(&[], false).unwrap(),
        r#"{"a": "\u00e9\u0001", "b": [1, 2.5, null, true]}|[1e+20,1e-05,0.1]|[]"#
    );
}

#[test]
fn syntax_errors_are_reported_at_compile_time() {
    let err = ChatTemplate::new("{% for message in messages %}", "", "").unwrap_err();
    assert!(matches!(err, ChatTemplateError::Syntax(_)), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("chat template does not compile"),
        "{err}"
    );
}

#[test]
fn strftime_now_renders_the_local_date_and_names_a_bad_format() {
    let template = ChatTemplate::new("{{ strftime_now('%d %B %Y') }}", "", "").unwrap();
    let before = chrono::Local::now().format("%d %B %Y").to_string();
    let rendered = template.apply(&[], false).unwrap();
    let after = chrono::Local::now().format("%d %B %Y").to_string();
    assert!(
        rendered == before || rendered == after,
        "{rendered} is neither {before} nor {after}"
    );
    let err = ChatTemplate::new("{{ strftime_now('%Q') }}", "", "")
        .unwrap()
        .apply(&[], false)
        .unwrap_err();
    assert!(
        matches!(&err, ChatTemplateError::Render(m) if m.contains("\"%Q\"")),
        "{err:?}"
    );
}
