"""LLM wire formats as pure data mappings (no I/O).

The canonical form inside Tollway is OpenAI's Chat Completions JSON (request, response and
stream chunks as dicts), with these documented extensions for what other APIs carry and must
get back on the next turn:

- assistant message `reasoning_content` (text) and `thinking_blocks` (Anthropic's thinking and
  redacted_thinking blocks, signatures included);
- content parts and system parts may carry `cache_control` (Anthropic prompt caching);
- tool calls may carry `extra_content.google.thought_signature` (Gemini);
- usage keeps `prompt_tokens_details.cached_tokens`, `completion_tokens_details.reasoning_tokens`
  and `cache_creation_input_tokens`.
"""
