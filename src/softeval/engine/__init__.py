"""engine: a frozen causal LM with trainable soft prompts in front of it, and nothing about what they are for.

Owns loading a model from any reference (`models`), soft prompts and their initialisers (`prompt`), the rows
`[pad][BOS][soft slots][context][target]` (`batching`), the forward pass with logits only at scored positions
(`forward`, `chunked_ce`), held-out loss (`evaluate`), generation through the KV cache (`generate`), shared-context
scoring (`prefix_sharing`), lane packing (`packing`), the training loop of several prompts in one pass (`loop`)
and PEFT adapter import/export (`peft_io`). It may import `softeval.store`, `softeval.config` and
`softeval.errors`; never tasks, the instruments, reports or the CLI.
"""
