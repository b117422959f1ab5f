"""A spec file and its data files are data: none of their text is rendered as a template (issue 29, defect 1).

lm-eval renders task descriptions and doc_to_* strings with an unsandboxed Jinja environment, so a spec's
text that reached it as template source could run code during tuning (render_context) and scoring
(lm-eval's requests). Every text must come back verbatim instead."""

import json
import os

import pytest

from softeval.bench import harness
from softeval.bench.tasks import resolve_task
from softeval.errors import ConfigError
from tests.conftest import write_jsonl

RAN = "SOFTEVAL_SPEC_TEMPLATE_RAN"
# Would set an environment variable if rendered as a template; printed verbatim it does nothing.
SIDE_EFFECT = "{{ cycler.__init__.__globals__.os.environ.setdefault('" + RAN + "', 'yes') }}"
PID = "{{ cycler.__init__.__globals__.os.getpid() }}"


def _spec(folder, description, kind="multiple_choice", rows=None):
    rows = rows or [{"q": "What is {{x}}?", "options": ["{% if true %}yes{% endif %}", "{{ y }}", "{# c #}"],
                     "gold": "B"},
                    {"q": "Second {{ 7 * 7 }}", "options": ["a", "b", "c"], "gold": "A"}]
    write_jsonl(folder / "train.jsonl", rows)
    write_jsonl(folder / "test.jsonl", rows)
    fields = {"question": "q", "answer": "gold"} | ({"choices": "options"} if kind == "multiple_choice" else {})
    spec = folder / "quiz.yaml"
    spec.write_text(json.dumps({"task": "quiz", "kind": kind, "files": {"train": "train.jsonl", "test": "test.jsonl"},
                                "fields": fields, "description": description}))
    return spec


@pytest.fixture
def no_side_effect():
    os.environ.pop(RAN, None)
    yield
    ran = os.environ.pop(RAN, None)
    assert ran is None, "a spec's text ran as a Jinja template"


def _contexts(lm_task) -> list[str]:
    """Every context the model sees for this task: tuning's (render_context), a few-shot one, and lm-eval's
    scoring requests."""
    docs = harness.eval_docs(lm_task)
    out = [harness.render_context(lm_task, d) for d in docs]
    out.append(lm_task.fewshot_context(docs[0], num_fewshot=1))
    lm_task.build_all_requests(limit=len(docs))
    out += [inst.arguments[0] for inst in lm_task.instances]
    return out


@pytest.mark.parametrize("description", [SIDE_EFFECT, PID, "{{x}}", "{% for i in range(3) %}{{ i }}{% endfor %}\n"])
def test_spec_description_is_printed_verbatim_and_runs_nothing(tmp_path, no_side_effect, description):
    task = resolve_task(str(_spec(tmp_path, description)))
    for form in task.forms:
        lm_task = harness.build_lm_eval_task(task.configs[form])
        contexts = _contexts(lm_task)
        assert contexts and all(c.startswith(description) for c in contexts), (form, contexts[0])
        # the data files' texts too: questions and choices as written
        assert "What is {{x}}?" in contexts[0]
        if form == "ll_cloze":
            doc = harness.eval_docs(lm_task)[0]
            assert lm_task.doc_to_choice(doc) == ["{% if true %}yes{% endif %}", "{{ y }}", "{# c #}"]
        else:
            assert "A. {% if true %}yes{% endif %}\nB. {{ y }}\nC. {# c #}\nAnswer:" in contexts[0]


def test_spec_short_answers_are_verbatim(tmp_path, no_side_effect):
    """A short answer that looks like a list or a template is the gold text as written."""
    rows = [{"q": "Which pair?", "gold": "[1, 2]"}, {"q": "Which braces?", "gold": SIDE_EFFECT},
            {"q": "Which number?", "gold": "007"}]
    task = resolve_task(str(_spec(tmp_path, "", kind="short_answer", rows=rows)))
    gen = harness.build_lm_eval_task(task.configs["gen"])
    docs = harness.eval_docs(gen)
    assert [gen.doc_to_target(d) for d in docs] == ["[1, 2]", SIDE_EFFECT, "007"]
    assert [harness.render_target(gen, d) for d in docs] == [" [1, 2]", " " + SIDE_EFFECT, " 007"]
    assert harness.render_context(gen, docs[0]) == "Question: Which pair?\nAnswer:"


def test_spec_description_must_be_text(tmp_path):
    spec = _spec(tmp_path, "x")
    spec.write_text(spec.read_text().replace('"description": "x"', '"description": {"a": 1}'))
    with pytest.raises(ConfigError, match=r"quiz.yaml: description must be text, got a dict$"):
        resolve_task(str(spec))
