"""The scripted model: a Messages API server that plays a model following the prompts.

- server.py: HTTP and server-sent events, the request log (`python3 -m harness.model`);
- dialogue.py: the next turn for a request, from the conversation alone;
- onecall.py: the turns under the one-call prompts (`tunbridge write --next`, the MCP tools);
- stack.py: the reference stack the dialogue answers /ip-stack with;
- flaws.py: wrong on purpose, to prove the judge (`--flaw`);
- behaviour.py: how the answer goes out (`--behaviour`: a per-turn delay today);
- serving.py: a local server's own endpoints when it stands in for one (`--serve-as`).
"""
