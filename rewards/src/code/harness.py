# r1kit code-reward harness: runs a candidate program against tests and reports one line per
# test on a private copy of stdout, each line prefixed with a nonce read from stdin (so a
# program printing look-alike lines cannot forge results).
# Partial credit for HumanEval `check(candidate)`: each top-level statement of check's body that
# contains an `assert` is one test; the other statements are setup, run in order. A failing
# test does not stop the others; a failing setup statement fails every test after it.
import ast
import builtins
import json
import os
import sys


def _main():
    spec = json.loads(sys.stdin.buffer.read())
    nonce = spec.pop("nonce")
    out = os.fdopen(os.dup(1), "w", buffering=1)
    harness_pid = os.getpid()

    def say(*parts):
        if os.getpid() != harness_pid:  # a forked child of the candidate runs this code too
            return
        out.write(nonce + " " + " ".join(str(p) for p in parts) + "\n")
        out.flush()

    def why(exc):
        return json.dumps((type(exc).__name__ + ": " + str(exc))[:300])

    def failure_kind(exc):
        if isinstance(exc, AssertionError):
            return "wrong_answer"
        if isinstance(exc, MemoryError):
            return "memory"
        if isinstance(exc, OSError) and exc.errno in (27, 28):  # EFBIG, ENOSPC
            return "file_size"
        return "error"

    form = spec["form"]
    if form == "check":
        test_tree = None
        try:
            test_tree = ast.parse(spec["test"])
        except SyntaxError as e:
            say("SETUPERR", why(e))
            return
        check_defs = [n for n in test_tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"]
        if not check_defs or not check_defs[0].args.args:
            say("SETUPERR", json.dumps("test code defines no check(candidate)"))
            return
        check_def = check_defs[-1]
        tests = [s for s in check_def.body if any(isinstance(n, ast.Assert) for n in ast.walk(s))]
        steps = check_def.body if tests else None
        total = len(tests) if tests else 1
    else:
        asserts = spec["asserts"]
        total = len(asserts)
    say("TOTAL", total)

    try:
        program = compile(spec["program"], "solution.py", "exec")
    except (SyntaxError, ValueError) as e:
        say("SYNTAX", why(e))
        return
    scope = {"__name__": "__r1kit_solution__", "__builtins__": builtins}
    try:
        exec(program, scope)
    except BaseException as e:  # SystemExit included: a program that exits passes nothing
        say("LOADERR", failure_kind(e), why(e))
        return

    if form == "check":
        try:
            exec(compile(test_tree, "test.py", "exec"), scope)
        except BaseException as e:
            say("SETUPERR", why(e))
            return
        entry_point = spec["entry_point"]
        if entry_point not in scope:
            say("LOADERR", "error", json.dumps("entry point " + entry_point + " is not defined"))
            return
        if steps is None:
            try:
                scope["check"](scope[entry_point])
                say("PASS", 0)
            except BaseException as e:
                say("FAIL", 0, failure_kind(e), why(e))
            say("DONE")
            return
        env = dict(scope)
        env[check_def.args.args[0].arg] = scope[entry_point]
        index = 0
        for stmt in steps:
            code = compile(ast.Module(body=[stmt], type_ignores=[]), "test.py", "exec")
            is_test = any(stmt is t for t in tests)
            try:
                exec(code, env)
                if is_test:
                    say("PASS", index)
            except BaseException as e:
                if not is_test:
                    say("SETUPERR", why(e))
                    return
                say("FAIL", index, failure_kind(e), why(e))
            if is_test:
                index += 1
    else:
        try:
            exec(compile(spec.get("setup", ""), "setup.py", "exec"), scope)
        except BaseException as e:
            say("SETUPERR", why(e))
            return
        for index, source in enumerate(asserts):
            try:
                exec(compile(source, "test.py", "exec"), scope)
                say("PASS", index)
            except BaseException as e:
                say("FAIL", index, failure_kind(e), why(e))
    say("DONE")


_main()
