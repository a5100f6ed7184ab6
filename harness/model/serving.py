"""What the scripted model answers besides the Messages API when it stands in for a local
server (`--serve-as NAME`): the endpoints harness/backends.py asks a backend's context on.

- `ollama`: GET /api/ps lists the model once it is loaded, with its `context_length`; POST
  /api/generate without a prompt loads it (a model it does not serve: 404, as ollama says);
- `llama-server`: GET /props with `default_generation_settings.n_ctx`;
- `vllm`: GET /v1/models with the model's `max_model_len`;
- `litellm`: GET /model/info with `model_info.max_input_tokens`.

`--context N` is the context it claims; `--served-model NAME` the one model it serves (any
name otherwise). Each answer is (status, JSON body), or None for a path it does not know.
"""


class Serving:
    """One kind of server's own endpoints."""

    KINDS = ("ollama", "llama-server", "vllm", "litellm")

    def __init__(self, kind: str, context: int = 131072, model: str = None):
        if kind not in self.KINDS:
            raise ValueError(f"--serve-as takes {', '.join(self.KINDS)}, not {kind!r}")
        self.kind, self.context, self.model = kind, context, model
        self.loaded = set()

    def serves(self, name) -> bool:
        return self.model is None or name == self.model

    def get(self, path: str):
        path = path.split("?")[0]
        if self.kind == "ollama" and path == "/api/ps":
            return 200, {"models": [{"name": m, "model": m, "context_length": self.context, "size_vram": 0}
                                    for m in sorted(self.loaded)]}
        if self.kind == "llama-server" and path == "/props":
            return 200, {"default_generation_settings": {"n_ctx": self.context}, "total_slots": 1}
        if self.kind == "vllm" and path == "/v1/models":
            return 200, {"object": "list", "data": [{"id": self.model or "dry-run", "object": "model",
                                                     "max_model_len": self.context}]}
        if self.kind == "litellm" and path == "/model/info":
            return 200, {"data": [{"model_name": self.model or "dry-run",
                                   "model_info": {"max_input_tokens": self.context}}]}
        return None

    def post(self, path: str, body: dict):
        if self.kind == "ollama" and path.split("?")[0] == "/api/generate":
            name = body.get("model")
            if not self.serves(name):
                return 404, {"error": f"model '{name}' not found"}
            self.loaded.add(name)
            return 200, {"model": name, "response": "", "done": True, "done_reason": "load"}
        return None

    def messages(self, body: dict) -> None:
        """A Messages request loads its model, as in ollama."""
        if self.kind == "ollama" and body.get("model"):
            self.loaded.add(body["model"])
