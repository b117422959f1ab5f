"""softeval: measure what language models can do by optimizing soft prompts.

Python API (mirrors the CLI):

    from softeval import load_model, TrainConfig, TaskConfig, OptimConfig, train_prompt, load_prompt, generate
    lm = load_model("smollm2-135m-instruct")
    cfg = TrainConfig(task=TaskConfig(name="repetition", options={"text": " hello"}), optim=OptimConfig(max_steps=60),
                      out="runs/rep")
    result = train_prompt(cfg, lm=lm)
    prompt, meta = load_prompt(result.prompt_path, lm.info)
    print(generate(lm, prompt, "Once upon a time", max_new_tokens=20, placement=meta.placement))
"""

from softeval.version import __version__  # noqa: E402

from softeval.errors import SoftevalError  # noqa: E402
from softeval.engine.models import load_model  # noqa: E402
from softeval.engine.prompt import SoftPrompt, ConditionalPrompt, load_prompt, save_prompt  # noqa: E402
from softeval.tasks import TaskConfig, build_task  # noqa: E402
from softeval.config import build_config  # noqa: E402
from softeval.engine.loop import OptimConfig  # noqa: E402
from softeval.engine.prompt import PromptConfig  # noqa: E402
from softeval.train import TrainConfig, run as train_prompt  # noqa: E402
from softeval.engine.evaluate import evaluate_prompt  # noqa: E402
from softeval.engine.generate import generate  # noqa: E402
from softeval.executors import ExecutorConfig  # noqa: E402

__all__ = [
    "__version__", "SoftevalError", "load_model", "SoftPrompt", "ConditionalPrompt", "load_prompt", "save_prompt",
    "TaskConfig", "build_task", "TrainConfig", "PromptConfig", "OptimConfig", "build_config", "train_prompt",
    "evaluate_prompt", "generate", "ExecutorConfig",
]
