"""harness/model/cache.py: prompt caching accounted as the Messages API documents it."""

import unittest

from harness.model.cache import CacheError, Prompt, PromptCache, min_cacheable, tokens

BP = {"type": "ephemeral"}
BP_1H = {"type": "ephemeral", "ttl": "1h"}
BIG = "x" * 8000          # about 2,000 tokens: above the 1,024 floor of claude-sonnet-4-5


def body(*blocks, model="claude-sonnet-4-5", system=None, tools=(), **extra):
    """One user message of text blocks; a block is (text, cache_control or None)."""
    content = [dict({"type": "text", "text": t}, **({"cache_control": cc} if cc else {})) for t, cc in blocks]
    out = {"model": model, "tools": list(tools), "messages": [{"role": "user", "content": content}]}
    if system is not None:
        out["system"] = system
    out.update(extra)
    return out


def account(cache, b, now):
    usage, writes = cache.account(b, now)
    cache.commit(writes, now)
    return usage


class Accounting(unittest.TestCase):
    def test_a_cold_request_writes_at_its_breakpoint_and_the_next_reads_it(self):
        cache = PromptCache()
        first = account(cache, body((BIG, BP), ("question 1", None)), 0.0)
        written = first["cache_creation_input_tokens"]
        self.assertGreater(written, 1024)
        self.assertEqual(first["cache_read_input_tokens"], 0)
        self.assertEqual(first["cache_creation"], {"ephemeral_5m_input_tokens": written, "ephemeral_1h_input_tokens": 0})
        self.assertGreater(first["input_tokens"], 0)   # the block after the breakpoint
        second = account(cache, body((BIG, BP), ("question 2", None)), 10.0)
        self.assertEqual(second["cache_read_input_tokens"], written)
        self.assertEqual(second["cache_creation_input_tokens"], 0)
        total = lambda u: u["input_tokens"] + u["cache_read_input_tokens"] + u["cache_creation_input_tokens"]
        self.assertEqual(total(first), total(second))

    def test_below_the_models_minimum_nothing_is_cached_and_nothing_said(self):
        cache = PromptCache()
        small = body(("x" * 2000, BP))              # about 500 tokens
        for _ in range(2):
            u = account(cache, small, 0.0)
            self.assertEqual((u["cache_creation_input_tokens"], u["cache_read_input_tokens"]), (0, 0))
        self.assertEqual(min_cacheable("claude-haiku-4-5-20251001"), 4096)
        self.assertEqual(min_cacheable("claude-opus-4-8"), 1024)
        self.assertEqual(min_cacheable("claude-opus-4-6"), 4096)
        self.assertEqual(min_cacheable("claude-opus-5"), 512)
        self.assertEqual(min_cacheable("made-up-model"), 1024)
        # 2,000 tokens: cached for Sonnet 4.5 (1,024), not for Haiku 4.5 (4,096).
        for model, cached in (("claude-sonnet-4-5", True), ("claude-haiku-4-5", False)):
            u = account(PromptCache(), body((BIG, BP), model=model), 0.0)
            self.assertEqual(u["cache_creation_input_tokens"] > 0, cached, model)

    def test_five_minutes_from_the_start_of_the_last_request_that_used_it(self):
        cache = PromptCache()
        b = body((BIG, BP), ("q", None))
        account(cache, b, 0.0)
        self.assertGreater(account(cache, b, 299.0)["cache_read_input_tokens"], 0)   # refreshed at 299
        self.assertGreater(account(cache, b, 598.0)["cache_read_input_tokens"], 0)   # alive till 599
        later = account(cache, b, 598.0 + 300.0)
        self.assertEqual(later["cache_read_input_tokens"], 0)
        self.assertGreater(later["cache_creation_input_tokens"], 0)

    def test_an_hour_long_entry_and_its_billing_split(self):
        cache = PromptCache()
        b = body((BIG, BP_1H), (BIG + "y", BP), ("q", None))
        u = account(cache, b, 0.0)
        c = u["cache_creation"]
        self.assertGreater(c["ephemeral_1h_input_tokens"], 0)
        self.assertGreater(c["ephemeral_5m_input_tokens"], 0)
        self.assertEqual(u["cache_creation_input_tokens"], c["ephemeral_1h_input_tokens"] + c["ephemeral_5m_input_tokens"])
        # After 10 minutes the 5-minute entry is gone and the hour-long one is read.
        again = account(cache, b, 600.0)
        self.assertEqual(again["cache_read_input_tokens"], c["ephemeral_1h_input_tokens"])
        self.assertEqual(again["cache_creation"]["ephemeral_5m_input_tokens"], c["ephemeral_5m_input_tokens"])

    def test_the_lookback_reaches_twenty_blocks_and_no_further(self):
        # The entry ends at block 1; a later request's only breakpoint at block P finds it
        # when block 1 is among the 20 it checks (P, P-1, ..., P-19): P <= 20.
        for between, hit in ((18, True), (19, False)):
            cache = PromptCache()
            account(cache, body((BIG, BP)), 0.0)
            later = body((BIG, None), *[(f"turn {i}", None) for i in range(between)], ("last", BP))
            self.assertEqual(Prompt(later).breakpoints[0][0], between + 2)
            u = account(cache, later, 1.0)
            self.assertEqual(u["cache_read_input_tokens"] > 0, hit, f"breakpoint at block {between + 2}")

    def test_a_string_content_is_the_text_block_it_stands_for(self):
        cache = PromptCache()
        listed = {"model": "claude-sonnet-4-5", "system": [{"type": "text", "text": BIG, "cache_control": BP}],
                  "messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]}
        account(cache, listed, 0.0)
        plain = dict(listed, messages=[{"role": "user", "content": "hello"}])
        self.assertGreater(account(cache, plain, 1.0)["cache_read_input_tokens"], 0)
        self.assertEqual(Prompt(plain).total[-1], Prompt(listed).total[-1])

    def test_thinking_settings_invalidate_the_messages_not_the_system(self):
        cache = PromptCache()
        base = {"model": "claude-sonnet-4-5", "system": [{"type": "text", "text": BIG, "cache_control": BP}],
                "messages": [{"role": "user", "content": [{"type": "text", "text": BIG + "m", "cache_control": BP}]}]}
        first = account(cache, base, 0.0)
        system_only = Prompt(base).total[1]
        changed = account(cache, dict(base, thinking={"type": "enabled", "budget_tokens": 2000}), 1.0)
        self.assertEqual(changed["cache_read_input_tokens"], system_only)
        self.assertEqual(changed["cache_creation_input_tokens"], first["cache_creation_input_tokens"] - system_only)

    def test_an_entry_is_readable_only_once_its_response_began(self):
        cache = PromptCache()
        b = body((BIG, BP))
        _, writes = cache.account(b, 0.0)
        self.assertEqual(cache.account(b, 0.5)[0]["cache_read_input_tokens"], 0)   # still streaming
        cache.commit(writes, 0.0)
        self.assertGreater(cache.account(b, 1.0)[0]["cache_read_input_tokens"], 0)

    def test_requests_the_api_refuses(self):
        with self.assertRaisesRegex(CacheError, "maximum of 4 blocks"):
            Prompt(body(*[(f"b{i}", BP) for i in range(5)]))
        with self.assertRaisesRegex(CacheError, "1h"):
            Prompt(body(("a", BP), ("b", BP_1H)))
        with self.assertRaisesRegex(CacheError, "ttl"):
            Prompt(body(("a", {"type": "ephemeral", "ttl": "2h"})))

    def test_tokens_are_a_quarter_of_the_bytes(self):
        self.assertEqual(tokens({"type": "text", "text": "x" * 400}), 107)   # 426 bytes of JSON


if __name__ == "__main__":
    unittest.main()
