#!/usr/bin/env python3
"""Write model/tests/fixtures/chat/<tokenizer>.json: transformers' apply_chat_template output.

For each tokenizer in assets/tokenizers/ (fetched by scripts/fetch-assets.sh) this records, for a
few conversations, the rendered chat string and its token ids as transformers produces them, plus
plain encodings of a few texts. model/tests/chat_template.rs compares r1kit's tokenizer with them
exactly.

Also writes qwen2_5.json (Qwen2.5's template, read from the Qwen2.5-Coder GGUF's metadata, rendered
through the Qwen3 tokenizer.json that shares its vocabulary) and templates.json (templates written
to exercise tojson, Python methods and printing, namespaces, whitespace control, raise_exception).

Needs `pip install transformers jinja2 gguf` (no torch; gguf only for qwen2_5.json). The committed
fixtures were made with transformers 5.17.0, the version on the GPU machine. Usage, from the
repository root:
    python3 scripts/make_chat_fixtures.py
"""
import argparse
import json
import pathlib
import sys

import jinja2
import tokenizers
import transformers
from transformers import AutoTokenizer

ROOT = pathlib.Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets" / "tokenizers"
OUT = ROOT / "model" / "tests" / "fixtures" / "chat"

# Llama 3.1+ templates read `date_string` (else strftime_now): a fixed one keeps fixtures stable.
DATE_STRING = "26 Jul 2024"

SYSTEM = "You are a careful math tutor. Answer with a short explanation."
CONVERSATIONS = {
    "single_user": [
        {"role": "user", "content": "What is the capital of France?"},
    ],
    "system_user": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "What is 17 * 23?"},
    ],
    "multi_turn": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "What is 17 * 23?"},
        {"role": "assistant", "content": "17 * 23 = 391."},
        {"role": "user", "content": "And 391 / 17?\nShow the steps."},
    ],
    "ends_with_assistant": [
        {"role": "user", "content": "Name a prime number between 10 and 20."},
        {"role": "assistant", "content": "13 is prime: it has no divisors other than 1 and 13."},
    ],
    # Non-ASCII text, surrounding whitespace (Llama 3 trims it), and a reasoning trace in an
    # earlier assistant turn (Qwen3 strips it from history).
    "unicode_and_thinking": [
        {"role": "user", "content": "  Café, naïve, 東京, emoji 🙂 — count the words.  "},
        {"role": "assistant", "content": "<think>\nSplit on spaces.\n</think>\n\nThere are 6 words."},
        {"role": "user", "content": "Now in French, s'il vous plaît."},
    ],
    # Tool results (role "tool"), two in a row, between assistant turns.
    "tool_results": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Compute 17 * 23 and 391 / 17."},
        {"role": "assistant", "content": "I will use the calculator twice."},
        {"role": "tool", "content": "391"},
        {"role": "tool", "content": "23"},
        {"role": "assistant", "content": "17 * 23 = 391 and 391 / 17 = 23."},
    ],
    # A final assistant turn with its reasoning: Qwen3 keeps it after the last user turn.
    "ends_with_reasoning": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Is 91 prime?"},
        {"role": "assistant", "content": "<think>\n91 = 7 * 13.\n</think>\n\nNo: 91 = 7 * 13."},
    ],
}

# Texts for plain encode/decode checks (add_special_tokens both ways).
TEXTS = [
    "Hello world",
    "  leading spaces, tabs\tand\nnewlines  ",
    "Déjà vu: 東京 🙂 1234567 + 0.5e-3",
    "<|im_start|>user\nspecial tokens inside text<|im_end|>",
]


def cases_for(tok, chat_template=None):
    template = chat_template or tok.chat_template or ""
    uses_thinking = "enable_thinking" in template
    cases = []
    for name, messages in CONVERSATIONS.items():
        for add_generation_prompt in (True, False):
            extras = [{}]
            if uses_thinking:
                extras = [{}, {"enable_thinking": False}, {"enable_thinking": True}]
            if "tools" in template and name in ("single_user", "system_user", "tool_results"):
                extras.append({"tools": TOOLS})
            for extra in extras:
                kwargs = dict(extra, date_string=DATE_STRING)
                if chat_template is not None:
                    kwargs["chat_template"] = chat_template
                text = tok.apply_chat_template(
                    messages, add_generation_prompt=add_generation_prompt, tokenize=False, **kwargs
                )
                ids = tok.apply_chat_template(
                    messages, add_generation_prompt=add_generation_prompt, tokenize=True,
                    return_dict=False, **kwargs
                )
                kwargs.pop("chat_template", None)
                if hasattr(ids, "input_ids"):
                    ids = ids["input_ids"]
                ids = [int(i) for i in ids]
                cases.append({
                    "name": name,
                    "messages": messages,
                    "add_generation_prompt": add_generation_prompt,
                    "extra": kwargs,
                    "text": text,
                    "ids": ids,
                })
    return cases


def encodings_for(tok):
    out = []
    for text in TEXTS:
        for add_special_tokens in (True, False):
            ids = [int(i) for i in tok.encode(text, add_special_tokens=add_special_tokens)]
            out.append({
                "text": text,
                "add_special_tokens": add_special_tokens,
                "ids": ids,
                "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
            })
    return out


# Templates that exercise what the real ones above do not: the `tojson` filter and its options,
# Python methods, namespaces, loops, printing of Python values, whitespace control, date_string /
# strftime_now, raise_exception. Rendered with transformers' own Jinja environment through the
# SmolLM2 tokenizer (its special tokens fill bos_token etc.).
# Tool schemas are written with keys in sorted order: without minijinja's `preserve_order` feature
# maps iterate sorted, while Python keeps insertion order.
TOOLS = [{
    "function": {
        "description": "Evaluate an arithmetic expression exactly.",
        "name": "calculator",
        "parameters": {
            "properties": {"expression": {"description": "e.g. 17 * 23", "type": "string"},
                           "precision": {"default": 2.5, "type": "number"}},
            "required": ["expression"],
            "type": "object",
        },
    },
    "type": "function",
}]
DATA = {"a_float": 2.5, "b_int": -3, "c_big": 12345678901234, "d_small": 1.5e-07, "e_text": "Ünïcode \"quoted\" \n tab\t <tag> & 🙂 it's",
        "f_list": [], "g_map": {}, "h_null": None, "i_bool": False, "j_whole": 3.0}

SYNTHETIC_TEMPLATES = {
    "tojson_variants": (
        "{{ tools | tojson }}\n{{ tools | tojson(indent=4) }}\n{{ data | tojson(ensure_ascii=True) }}\n"
        "{{ data | tojson(separators=(',', ':'), sort_keys=True) }}\n{{ messages | tojson }}\n{{ data.f_list | tojson(indent=2) }}"
    ),
    "python_methods": (
        "{% for m in messages %}{{ m.role.upper() }}:{{ m.content.strip().split(' ') | join('_') }}|"
        "{{ m.content.replace('a', 'A') }}|{{ m.content.lstrip() }}|{{ m.content.rstrip('. ') }}|"
        "{{ m.content.split('\\n')[-1] }}|{{ m.content.startswith('Wh') }}|{{ m.content.endswith('?') }}\n{% endfor %}"
        "{% for k, v in data.items() %}{{ k }}={{ v }};{% endfor %}\n{{ data.get('missing', 'dflt') }} {{ data.get('b_int') }} {{ data.keys() | list | length }}"
    ),
    "printing_python_values": (
        "{{ flag }} {{ none }} {{ data.h_null }} {{ 7 / 2 }} {{ 8 / 2 }} {{ 7 // 2 }} {{ 2 ** 10 }} {{ 'ab' * 3 }} "
        "{{ [1, 'a', none, true, 2.5] }} {{ {'k': 1.0} }} {{ data.j_whole }} {{ data.d_small }} {{ data.c_big }} [{{ undefined_name }}]"
    ),
    "namespace_and_loops": (
        "{%- set ns = namespace(count=0, last_user=-1) %}"
        "{%- for m in messages %}{%- if m.role == 'user' %}{%- set ns.count = ns.count + 1 %}{%- set ns.last_user = loop.index0 %}{%- endif %}{%- endfor %}"
        "users={{ ns.count }} last={{ ns.last_user }}\n"
        "{% for m in messages[::-1] %}{{ loop.index }}/{{ loop.length }}:{{ m.role }}{% if not loop.last %},{% endif %}{% endfor %}\n"
        "{{ messages | map(attribute='role') | join(',') }} {{ messages | selectattr('role', 'equalto', 'user') | list | length }} "
        "{{ (messages | first).role }} {{ (messages | last)['role'] }} {{ messages[1:] | length }}\n"
        "{%- if enable_thinking is defined and enable_thinking is false %} no-think{% endif %}"
        "{%- if add_generation_prompt %} gen{% endif %}\n"
        "{{ bos_token }}{{ eos_token }}{{ unk_token }}{{ pad_token }}"
    ),
    "whitespace_control": (
        "<s>\n    {% for m in messages %}\n    {{ m.role }}: {{ m.content | trim }}\n    {% endfor %}\n"
        "    {% if add_generation_prompt %}\n    assistant:\n    {% endif %}\n</s>\n\n"
    ),
    "dated_system_with_tools": (
        "{%- if not date_string is defined %}{%- set date_string = strftime_now('%d %b %Y') %}{%- endif %}"
        "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] | trim %}{%- set messages = messages[1:] %}"
        "{%- else %}{%- set system_message = '' %}{%- endif %}"
        "{{- bos_token }}system\nToday Date: {{ date_string }}\n"
        "{%- if tools is not none %}\nTools:\n{%- for t in tools %}\n{{ t | tojson(indent=4) }}{%- endfor %}{%- endif %}\n"
        "{{ system_message }}{{ eos_token }}\n"
        "{%- for message in messages %}{{ message['role'] }}: {{ message['content'] | trim }}{{ eos_token }}\n{%- endfor %}"
        "{%- if add_generation_prompt %}assistant:{%- endif %}"
    ),
    # transformers' `{% generation %}` tag (assistant-token masks) renders its body unchanged.
    "generation_blocks": (
        "{% for m in messages %}\n    {% if m.role == 'assistant' %}\n    {%- generation -%}\n  {{ m.content }}\n    {%- endgeneration %}\n"
        "    {% else %}\n{{ m.role }}: {{ m.content }}\n    {% endif %}\n{% endfor %}"
    ),
    "raise_exception": (
        "{%- if messages[0]['role'] != 'system' %}{{ raise_exception('Conversations must start with a system message') }}{%- endif %}ok"
    ),
}
SYNTHETIC_RUNS = [
    ("tojson_variants", "multi_turn", {"tools": TOOLS, "data": DATA}),
    ("python_methods", "multi_turn", {"data": DATA}),
    ("printing_python_values", "single_user", {"flag": True, "data": DATA}),
    ("namespace_and_loops", "multi_turn", {}),
    ("namespace_and_loops", "multi_turn", {"enable_thinking": False}),
    ("whitespace_control", "multi_turn", {}),
    ("dated_system_with_tools", "multi_turn", {"date_string": DATE_STRING, "tools": TOOLS}),
    ("dated_system_with_tools", "single_user", {"date_string": DATE_STRING}),
    ("generation_blocks", "multi_turn", {}),
    ("raise_exception", "single_user", {}),
    ("raise_exception", "system_user", {}),
]


def synthetic_cases(tok):
    cases = []
    for template_name, conversation, extra in SYNTHETIC_RUNS:
        messages = CONVERSATIONS[conversation]
        template = SYNTHETIC_TEMPLATES[template_name]
        for add_generation_prompt in (True, False):
            case = {"name": f"{template_name}/{conversation}", "template": template, "messages": messages,
                    "add_generation_prompt": add_generation_prompt, "extra": extra}
            try:
                case["text"] = tok.apply_chat_template(messages, chat_template=template, tokenize=False,
                                                       add_generation_prompt=add_generation_prompt, **extra)
                ids = tok.apply_chat_template(messages, chat_template=template, tokenize=True, return_dict=False,
                                              add_generation_prompt=add_generation_prompt, **extra)
                case["ids"] = [int(i) for i in (ids["input_ids"] if hasattr(ids, "input_ids") else ids)]
            except jinja2.exceptions.TemplateError as e:
                case["error"] = str(e)
            cases.append(case)
    return cases


# Qwen2.5's chat template (default system prompt, tools) is in the Qwen2.5-Coder GGUF's metadata;
# Qwen2.5 and Qwen3 share the vocabulary, so it renders through the Qwen3 tokenizer.json.
QWEN25_GGUF = ROOT / "assets" / "models" / "Qwen2.5-Coder-0.5B-Instruct.gguf"


def gguf_chat_template(path):
    from gguf import GGUFReader  # pip install gguf; only needed for this fixture

    field = GGUFReader(str(path)).fields["tokenizer.chat_template"]
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def write_fixture(path, fixture):
    path.write_text(json.dumps(fixture, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"{path}: {len(fixture['cases'])} cases")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=pathlib.Path, default=ASSETS, help="folder of tokenizer folders")
    parser.add_argument("--out", type=pathlib.Path, default=OUT, help="where the fixtures go")
    args = parser.parse_args()
    assets, out = args.assets.resolve(), args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in assets.iterdir() if (p / "tokenizer.json").exists()) if assets.exists() else []
    if not names:
        sys.exit(f"no tokenizers under {assets}: run scripts/fetch-assets.sh")
    for name in names:
        tok = AutoTokenizer.from_pretrained(str(assets / name))
        fixture = {
            "tokenizer": name,
            "made_by": "scripts/make_chat_fixtures.py",
            "transformers_version": transformers.__version__,
            "tokenizers_version": tokenizers.__version__,
            "jinja2_version": jinja2.__version__,
            "vocab_size_with_added": len(tok),
            "cases": cases_for(tok),
            "encodings": encodings_for(tok),
        }
        path = out / f"{name}.json"
        path.write_text(json.dumps(fixture, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        print(f"{path}: {len(fixture['cases'])} conversations, {len(fixture['encodings'])} encodings")
        if name == "qwen3" and QWEN25_GGUF.exists():
            template = gguf_chat_template(QWEN25_GGUF)
            write_fixture(out / "qwen2_5.json", {
                "tokenizer": name,
                "chat_template_source": f"tokenizer.chat_template of {QWEN25_GGUF.name}",
                "chat_template": template,
                "made_by": "scripts/make_chat_fixtures.py",
                "transformers_version": transformers.__version__,
                "tokenizers_version": tokenizers.__version__,
                "jinja2_version": jinja2.__version__,
                "vocab_size_with_added": len(tok),
                "cases": cases_for(tok, chat_template=template),
                "encodings": [],
            })
        if name == "smollm2":
            synthetic = {
                "tokenizer": name,
                "made_by": "scripts/make_chat_fixtures.py",
                "transformers_version": transformers.__version__,
                "jinja2_version": jinja2.__version__,
                "cases": synthetic_cases(tok),
            }
            path = out / "templates.json"
            path.write_text(json.dumps(synthetic, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
            print(f"{path}: {len(synthetic['cases'])} template renders")


if __name__ == "__main__":
    main()
